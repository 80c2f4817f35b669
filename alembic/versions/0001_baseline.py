"""Baseline: dot_config, the IU Core gate keys at their safe default, and their readers.

Revision ID: 0001_baseline
Revises: (none)

Creates: table public.dot_config; the eight gate keys of SPEC 3.1 at 'false' (six governable,
two never-flip); the fail-closed STABLE readers fn_iu_composer_enabled,
fn_iu_structure_ops_enabled, fn_iu_delivery_enabled, fn_iu_three_axis_auto_refresh_enabled and
fn_iu_vector_sync_enabled (v1 files in sql_functions/).
Requires: nothing. Refuses (42P07) when public.dot_config already exists: a production database
that already has these objects adopts them with `alembic stamp 0001_baseline` instead.
Reverses: drops the readers, then dot_config. Refuses while dot_config holds anything this
revision did not create (another key, or a gate not at 'false'), unless -x allow_data_loss=true.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# (key, class, description); every value starts at the safe default 'false'.
GATES = (
    ("iu_core.composer_enabled", "governable", "Gate: IU Core composer writes."),
    ("iu_core.structure_ops_enabled", "governable", "Gate: IU Core structure operations."),
    ("iu_core.delivery_enabled", "governable", "Gate: IU Core route delivery."),
    (
        "iu_core.three_axis_auto_refresh_enabled",
        "governable",
        "Gate: three-axis automatic refresh.",
    ),
    ("queue.job_substrate.enabled", "governable", "Gate: the job queue substrate."),
    ("queue.dlq.replay_enabled", "governable", "Gate: dead-letter replay."),
    (
        "iu_enact.allow_no_review_decision",
        "never-flip",
        "Never-flip: enacting without a review decision. Supply a real review_decision_id.",
    ),
    ("iu_core.vector_sync_enabled", "never-flip", "Never-flip: vector sync stays off."),
)
# (reader function, the gate it reads)
READERS = (
    ("fn_iu_composer_enabled", "iu_core.composer_enabled"),
    ("fn_iu_structure_ops_enabled", "iu_core.structure_ops_enabled"),
    ("fn_iu_delivery_enabled", "iu_core.delivery_enabled"),
    ("fn_iu_three_axis_auto_refresh_enabled", "iu_core.three_axis_auto_refresh_enabled"),
    ("fn_iu_vector_sync_enabled", "iu_core.vector_sync_enabled"),
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
DO $baseline$
BEGIN
    IF pg_catalog.to_regclass('public.dot_config') IS NOT NULL THEN
        RAISE EXCEPTION 'public.dot_config already exists: this database predates the package'
            USING ERRCODE = '42P07',
                  HINT = 'Adopt it with: alembic stamp 0001_baseline (see README, Adopting production).';
    END IF;
END
$baseline$"""
    )
    _execute(
        """
CREATE TABLE public.dot_config (
    key text NOT NULL,
    value text NOT NULL,
    description text,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT pk_dot_config PRIMARY KEY (key)
)"""
    )
    _execute("REVOKE ALL ON TABLE public.dot_config FROM PUBLIC")
    _execute(
        "COMMENT ON TABLE public.dot_config IS "
        "'IU Core configuration: on/off gates and settings. Gate values are read fail-closed: "
        "only the exact text ''true'' is on.'"
    )
    _execute("COMMENT ON COLUMN public.dot_config.key IS 'Dotted configuration key, e.g. iu_core.composer_enabled.'")
    _execute("COMMENT ON COLUMN public.dot_config.value IS 'Text value; a gate is on only when this is exactly ''true''.'")
    _execute("COMMENT ON COLUMN public.dot_config.updated_at IS 'When the value last changed.'")
    rows = ",\n".join(f"    ('{key}', 'false', '{description}')" for key, _, description in GATES)
    _execute(f"INSERT INTO public.dot_config (key, value, description) VALUES\n{rows}")
    for reader, key in READERS:
        _create_function(f"{reader}.v1.sql")
        _execute(f"REVOKE ALL ON FUNCTION public.{reader}() FROM PUBLIC")
        _execute(
            f"COMMENT ON FUNCTION public.{reader}() IS "
            f"'Fail-closed reader of gate {key}: true only for the exact value ''true''.'"
        )


def downgrade() -> None:
    _begin(expected_version=revision)
    allow_data_loss = "true" if _option("allow_data_loss", False) else "false"
    keys = ", ".join(f"'{key}'" for key, _, _ in GATES)
    _execute(
        f"""
DO $baseline$
DECLARE
    v_foreign bigint;
    v_open bigint;
BEGIN
    SELECT pg_catalog.count(*) FILTER (WHERE c.key NOT IN ({keys})),
           pg_catalog.count(*) FILTER (WHERE c.key IN ({keys}) AND c.value <> 'false')
      INTO v_foreign, v_open
      FROM public.dot_config AS c;
    RAISE NOTICE 'pre-rollback snapshot: dot_config holds % other key(s), % gate(s) not at false',
        v_foreign, v_open;
    IF (v_foreign > 0 OR v_open > 0) AND NOT {allow_data_loss} THEN
        RAISE EXCEPTION 'refusing to drop dot_config: % other key(s) and % gate(s) not at false would be lost',
                v_foreign, v_open
            USING ERRCODE = '55000',
                  HINT = 'Re-run with -x allow_data_loss=true to acknowledge the loss.';
    END IF;
END
$baseline$"""
    )
    for reader, _ in reversed(READERS):
        _execute(f"DROP FUNCTION public.{reader}()")
    _execute("DROP TABLE public.dot_config")
