"""Runtime gate reader v2: an expired window reads as closed before the watchdog runs.

Revision ID: 0007_runtime_reader_v2
Revises: 0006_gate_protocol

Creates: fn_dot_iu_operator_runtime_enabled() v2 (sql_functions/...v2.sql) and its comment: true
only when iu_core.operator_runtime_enabled is exactly 'true' AND the gate's latest
iu_gate_transition is an open whose expires_at is ahead of clock_timestamp(). A value set to
'true' by hand, with no open window on record, now reads as false (fail closed); the upgrade says
so in a NOTICE when the gate is 'true' at that moment. Same signature, so its privileges (EXECUTE
revoked from PUBLIC) carry over.
Requires: 0006_gate_protocol (iu_gate_transition).
Reverses: refuses while iu_core.operator_runtime_enabled is 'true' (v1 reads the value alone,
so an expired window would read as open again; close the gate or run the watchdog first), then
re-runs the v1 file and restores the v1 comment.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0007_runtime_reader_v2"
down_revision = "0006_gate_protocol"
branch_labels = None
depends_on = None

READER = "public.fn_dot_iu_operator_runtime_enabled()"
COMMENT_V1 = (
    "Fail-closed reader of gate iu_core.operator_runtime_enabled: true only for the exact "
    "value ''true''."
)
COMMENT_V2 = (
    "Fail-closed reader of gate iu_core.operator_runtime_enabled: true only for the exact "
    "value ''true'' inside a live window (its latest iu_gate_transition is an open whose "
    "expires_at is ahead of clock_timestamp())."
)

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
DO $windowless$
BEGIN
    IF EXISTS (SELECT 1 FROM public.dot_config AS c
                WHERE c.key = 'iu_core.operator_runtime_enabled' AND c.value = 'true')
       AND NOT EXISTS (SELECT 1
                         FROM (SELECT t.action, t.expires_at
                                 FROM public.iu_gate_transition AS t
                                WHERE t.gate_key = 'iu_core.operator_runtime_enabled'
                                ORDER BY t.created_at DESC, t.transition_id DESC
                                LIMIT 1) AS latest
                        WHERE latest.action = 'open'
                          AND latest.expires_at > pg_catalog.clock_timestamp()) THEN
        RAISE NOTICE '% is ''true'' with no live window: it reads as false from now on',
                'iu_core.operator_runtime_enabled'
            USING HINT = 'Open it through fn_iu_gate_open (substrate gates open).';
    END IF;
END
$windowless$"""
    )
    _create_function("fn_dot_iu_operator_runtime_enabled.v2.sql")
    _execute(f"COMMENT ON FUNCTION {READER} IS '{COMMENT_V2}'")


def downgrade() -> None:
    _begin(expected_version=revision)
    _execute(
        """
DO $rollback$
BEGIN
    IF EXISTS (SELECT 1 FROM public.dot_config AS c
                WHERE c.key = 'iu_core.operator_runtime_enabled' AND c.value = 'true') THEN
        RAISE EXCEPTION 'refusing to restore the v1 runtime gate reader while % is open',
                'iu_core.operator_runtime_enabled'
            USING ERRCODE = '55000',
                  HINT = 'v1 ignores windows: close the gate (fn_iu_gate_close) first.';
    END IF;
END
$rollback$"""
    )
    _create_function("fn_dot_iu_operator_runtime_enabled.v1.sql")
    _execute(f"COMMENT ON FUNCTION {READER} IS '{COMMENT_V1}'")
