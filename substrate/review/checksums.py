"""Migration checksums: a revision's SQL rendered with default options, its SHA-256, and what a
database recorded when it applied it.

``alembic/env.py`` records one ``public.substrate_migration_history`` row per applied step with
the SHA-256 of the revision's SQL rendered with default options (online and in ``--sql`` output
alike). ``render_step`` repeats ``render_step`` of ``alembic/env.py`` line for line: env.py must
stay self-contained (a DBA runs Alembic without this package installed), so the lines live in
both places, and ``tests/test_checksums.py`` proves both give the same digest for every revision.

``statuses`` re-renders each revision a database has applied (base to its recorded revision) and
compares it with its latest ``upgrade`` row:

- ``match``: the same digest;
- ``changed``: another digest: the revision file was edited after it was applied (released
  history was rewritten);
- ``not recorded``: no upgrade row. ``0001_baseline`` always (it runs before the history table
  exists), and any revision a database was ``alembic stamp``-ed past.

``substrate verify`` judges them (``substrate.review.verify.checksums``).
"""

from __future__ import annotations

import hashlib
import io
import logging

from substrate.review.tree import Tree

HISTORY = "public.substrate_migration_history"
LATEST_UPGRADES_SQL = f"""
SELECT DISTINCT ON (revision) revision, sql_sha256, mode, applied_by, applied_at
  FROM {HISTORY}
 WHERE direction = 'upgrade'
 ORDER BY revision, applied_at DESC, history_id DESC
"""


def render_step(module, direction: str) -> str:
    """Render one revision's upgrade or downgrade with default options, offline."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

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


def recorded(conn) -> dict[str, dict]:
    """The latest upgrade row per revision, or {} when the history table does not exist."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (HISTORY,)).fetchone()[0]:
        return {}
    return {
        revision: {"sha256": sha, "mode": mode, "applied_by": by, "applied_at": at.isoformat()}
        for revision, sha, mode, by, at in conn.execute(LATEST_UPGRADES_SQL).fetchall()
    }


def statuses(conn, revision: str | None, tree: Tree) -> list[dict]:
    """One entry per applied revision, base first: revision, status, recorded and rendered."""
    rows = recorded(conn)
    out = []
    for applied in tree.applied(revision):
        rendered = digest(tree.module(applied), "upgrade")
        row = rows.get(applied)
        if row is None:
            status = "not recorded"
        else:
            status = "match" if row["sha256"] == rendered else "changed"
        out.append({"revision": applied, "status": status, "rendered_sha256": rendered,
                    "recorded": row})
    return out
