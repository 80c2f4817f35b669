"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Creates: (what this revision adds)
Requires: (what must exist before it)
Reverses: (what the downgrade does, and when it refuses)
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def _execute(sql: str) -> None:
    """Run one statement as raw SQL: the same bytes online and in --sql output."""
    ctx = op.get_context()
    if ctx.as_sql:
        ctx.impl.static_output(sql.strip() + ";")
    else:
        ctx.connection.exec_driver_sql(sql, execution_options={"no_parameters": True})


def _option(name: str, default: object) -> object:
    """An -x option, validated by alembic/env.py; defaults when rendering checksums."""
    return op.get_context().opts.get("substrate", {}).get(name, default)


def _begin(expected_version: str | None) -> None:
    """Open the step: its lock_timeout, then a guard on the revision the database is at."""
    lock_timeout = _option("lock_timeout", "5s")
    _execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
    found = "(SELECT pg_catalog.string_agg(version_num, ',') FROM public.alembic_version)"
    want = "NULL" if expected_version is None else f"'{expected_version}'"
    _execute(
        "DO $guard$\nBEGIN\n"
        f"  IF {found} IS DISTINCT FROM {want} THEN\n"
        f"    RAISE EXCEPTION 'substrate: this step expects the database at revision %, found %',\n"
        f"      coalesce({want}, '<base>'), coalesce({found}, '<base>')\n"
        "      USING ERRCODE = '55000';\n"
        "  END IF;\nEND\n$guard$"
    )


def _create_function(version_file: str) -> None:
    """Run one immutable function-version file from sql_functions/ (never edited once released)."""
    path = Path(__file__).resolve().parents[2] / "sql_functions" / version_file
    _execute(path.read_text().rstrip().rstrip(";"))


def upgrade() -> None:
    _begin(expected_version=down_revision)


def downgrade() -> None:
    _begin(expected_version=revision)
