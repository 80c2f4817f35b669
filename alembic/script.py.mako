"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Creates: (what this revision adds, and who may use it: docs/roles.md)
Requires: (what must exist before it)
Reverses: (what the downgrade does, and when it refuses)
"""

from __future__ import annotations

import revision_helpers_v2 as h

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    h.begin(expected_version=down_revision)


def downgrade() -> None:
    h.begin(expected_version=revision)
