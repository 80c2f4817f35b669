"""Migration history: which revision ran, in which direction, with which SQL checksum.

Revision ID: 0002_migration_history
Revises: 0001_baseline

Creates: table public.substrate_migration_history. From this revision on, alembic/env.py appends
one row per applied step (online, and from the rendered --sql script alike) with the SHA-256 of
the revision's SQL rendered with default options; `substrate verify` compares it with today's
rendering to catch an edited released revision.
Requires: 0001_baseline.
Reverses: reports the row count (pre-rollback snapshot) and drops the table; the history of a
database being taken back to its baseline goes with it (it is the migration tool's own record).
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0002_migration_history"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


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
    _execute(
        """
CREATE TABLE public.substrate_migration_history (
    history_id bigint GENERATED ALWAYS AS IDENTITY,
    revision text NOT NULL,
    direction text NOT NULL,
    sql_sha256 text NOT NULL,
    mode text NOT NULL,
    applied_by text NOT NULL DEFAULT session_user,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT pk_substrate_migration_history PRIMARY KEY (history_id),
    CONSTRAINT ck_substrate_migration_history_direction
        CHECK (direction IN ('upgrade', 'downgrade')),
    CONSTRAINT ck_substrate_migration_history_sha256 CHECK (sql_sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ck_substrate_migration_history_mode CHECK (mode IN ('online', 'offline'))
)"""
    )
    _execute(
        "CREATE INDEX ix_substrate_migration_history_revision_applied_at "
        "ON public.substrate_migration_history (revision, applied_at DESC)"
    )
    _execute("REVOKE ALL ON TABLE public.substrate_migration_history FROM PUBLIC")
    _execute(
        "COMMENT ON TABLE public.substrate_migration_history IS "
        "'One row per applied migration step: revision, direction, SHA-256 of its default "
        "rendering, online or offline, who and when. Written by alembic/env.py.'"
    )
    _execute(
        "COMMENT ON COLUMN public.substrate_migration_history.sql_sha256 IS "
        "'SHA-256 of the step''s SQL rendered with default options; substrate verify re-renders "
        "and compares.'"
    )
    _execute(
        "COMMENT ON COLUMN public.substrate_migration_history.mode IS "
        "'online (alembic upgrade) or offline (the rendered --sql script run by hand).'"
    )


def downgrade() -> None:
    _begin(expected_version=revision)
    _execute(
        """
DO $history$
BEGIN
    RAISE NOTICE 'pre-rollback snapshot: substrate_migration_history holds % row(s)',
        (SELECT pg_catalog.count(*) FROM public.substrate_migration_history);
END
$history$"""
    )
    _execute("DROP INDEX public.ix_substrate_migration_history_revision_applied_at")
    _execute("DROP TABLE public.substrate_migration_history")
