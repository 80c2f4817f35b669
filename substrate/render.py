"""A revision's SQL rendered with default options, and its SHA-256: the migration checksum.

``render_step`` repeats ``render_step`` of ``alembic/env.py`` line for line. env.py must stay
self-contained (a DBA runs Alembic without this package installed), so the ten lines live in both
places; ``tests/test_checksums.py`` proves both give the same digest for every revision.
"""

from __future__ import annotations

import hashlib
import io
import logging

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext


def render_step(module, direction: str) -> str:
    """Render one revision's upgrade or downgrade with default options, offline."""
    buffer = io.StringIO()
    quiet = logging.getLogger("alembic.runtime.migration")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the scratch context is not news to the operator
    try:
        scratch = MigrationContext.configure(
            dialect_name="postgresql",
            opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
        )
        with Operations.context(scratch):
            getattr(module, direction)()
    finally:
        quiet.setLevel(level)
    return buffer.getvalue()


def digest(module, direction: str = "upgrade") -> str:
    """The SHA-256 env.py records for this step."""
    return hashlib.sha256(render_step(module, direction).encode()).hexdigest()
