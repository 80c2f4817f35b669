"""Operator-runtime substrate: the command catalog, the append-only run ledger, its logger, views.

Revision ID: 0003_operator_runtime
Revises: 0002_migration_history

Creates (SPEC 3.2, the design's "migration 018"):
- config row iu_core.operator_runtime_enabled = 'false' (the runtime APPLY gate, governable) and
  its fail-closed reader fn_dot_iu_operator_runtime_enabled() (v1);
- table dot_iu_command_catalog (the dot_iu_* vocabulary; rows come from seed revisions);
- table dot_iu_command_run (the run ledger) with its CHECKs, two btree indexes and the
  append-only triggers (fn_dot_iu_append_only_guard v1: UPDATE refused, DELETE/TRUNCATE only
  under SET LOCAL dot_iu.ledger_maintenance = 'on');
- fn_dot_iu_command_log(...) v1, the ledger's only writer (ungated, fail-closed on vocabulary);
- views v_dot_iu_command_registry and v_dot_iu_command_run_health.
Requires: 0002_migration_history (and dot_config from 0001_baseline).
Reverses: pre-rollback snapshot (NOTICE with the row counts); refuses while the ledger holds rows
unless -x allow_data_loss=true (rendered into --sql output, so offline scripts carry the same
guard); then drops views, triggers, functions, tables and the config key, in that order, with
no CASCADE.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0003_operator_runtime"
down_revision = "0002_migration_history"
branch_labels = None
depends_on = None

LOG_SIGNATURE = "public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)"
RUN_INDEXES = (
    ("ix_dot_iu_command_run_command_name_created_at", "command_name, created_at DESC"),
    ("ix_dot_iu_command_run_run_status_created_at", "run_status, created_at DESC"),
)
RUN_TRIGGERS = (
    ("tg_dot_iu_command_run_append_only", "BEFORE UPDATE OR DELETE", "FOR EACH ROW"),
    ("tg_dot_iu_command_run_no_truncate", "BEFORE TRUNCATE", "FOR EACH STATEMENT"),
)

REGISTRY_VIEW_V1 = """
CREATE VIEW public.v_dot_iu_command_registry AS
SELECT c.command_name,
       c.category,
       c.mutating,
       c.reversible,
       c.target_function,
       c.inverse_command,
       c.description,
       pg_catalog.to_regprocedure(c.target_function) IS NOT NULL AS target_resolves,
       coalesce(r.total_runs, 0) AS total_runs,
       coalesce(r.applied_runs, 0) AS applied_runs,
       coalesce(r.refused_runs, 0) AS refused_runs,
       coalesce(r.failed_runs, 0) AS failed_runs,
       r.last_run_at,
       r.last_status
  FROM public.dot_iu_command_catalog AS c
  LEFT JOIN (
        SELECT run.command_name,
               pg_catalog.count(*) AS total_runs,
               pg_catalog.count(*) FILTER (WHERE run.run_status = 'applied') AS applied_runs,
               pg_catalog.count(*) FILTER (WHERE run.run_status = 'refused') AS refused_runs,
               pg_catalog.count(*) FILTER (WHERE run.run_status = 'failed') AS failed_runs,
               pg_catalog.max(run.created_at) AS last_run_at,
               (pg_catalog.array_agg(run.run_status
                                     ORDER BY run.created_at DESC, run.run_id DESC))[1]
                   AS last_status
          FROM public.dot_iu_command_run AS run
         GROUP BY run.command_name
       ) AS r ON r.command_name = c.command_name"""

HEALTH_VIEW_V1 = """
CREATE VIEW public.v_dot_iu_command_run_health AS
SELECT pg_catalog.count(*) AS total_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_mode = 'apply') AS apply_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_status = 'applied') AS applied_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_status = 'refused') AS refused_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_status = 'failed') AS failed_runs,
       pg_catalog.count(DISTINCT run.command_name) AS distinct_commands,
       (SELECT pg_catalog.count(*) FROM public.dot_iu_command_catalog) AS catalog_size,
       pg_catalog.max(run.created_at) AS last_run_at
  FROM public.dot_iu_command_run AS run"""


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
        "INSERT INTO public.dot_config (key, value, description) VALUES "
        "('iu_core.operator_runtime_enabled', 'false', "
        "'Gate: the operator runtime may APPLY catalogued commands.')"
    )
    _create_function("fn_dot_iu_operator_runtime_enabled.v1.sql")
    _execute("REVOKE ALL ON FUNCTION public.fn_dot_iu_operator_runtime_enabled() FROM PUBLIC")
    _execute(
        "COMMENT ON FUNCTION public.fn_dot_iu_operator_runtime_enabled() IS "
        "'Fail-closed reader of gate iu_core.operator_runtime_enabled: true only for the exact "
        "value ''true''.'"
    )

    _execute(
        r"""
CREATE TABLE public.dot_iu_command_catalog (
    command_name text NOT NULL,
    category text NOT NULL,
    mutating boolean NOT NULL,
    reversible boolean NOT NULL,
    target_function text NOT NULL,
    inverse_command text,
    description text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT pk_dot_iu_command_catalog PRIMARY KEY (command_name),
    CONSTRAINT ck_dot_iu_command_catalog_command_name CHECK (command_name ~ '^dot_iu_[a-z0-9_]+$'),
    CONSTRAINT ck_dot_iu_command_catalog_category
        CHECK (category IN ('health', 'read', 'compose', 'structure', 'lifecycle', 'event')),
    CONSTRAINT ck_dot_iu_command_catalog_target_function
        CHECK (target_function ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\([a-z0-9_ ,\[\]]*\)$'),
    CONSTRAINT ck_dot_iu_command_catalog_description CHECK (description ~ '[^[:space:]]'),
    CONSTRAINT fk_dot_iu_command_catalog_inverse_command FOREIGN KEY (inverse_command)
        REFERENCES public.dot_iu_command_catalog (command_name) DEFERRABLE INITIALLY DEFERRED
)"""
    )
    _execute("REVOKE ALL ON TABLE public.dot_iu_command_catalog FROM PUBLIC")
    _execute(
        "COMMENT ON TABLE public.dot_iu_command_catalog IS "
        "'The dot_iu_* command vocabulary. Rows come only from generated seed revisions "
        "(registry in seeds/); the run ledger refuses commands absent from it.'"
    )
    _execute(
        "COMMENT ON COLUMN public.dot_iu_command_catalog.target_function IS "
        "'Schema-qualified IU Core function with its argument types, e.g. "
        "public.fn_iu_collection_validate(uuid); resolvable with to_regprocedure.'"
    )
    _execute(
        "COMMENT ON COLUMN public.dot_iu_command_catalog.inverse_command IS "
        "'The command that undoes this one, when there is one.'"
    )
    _execute(
        "COMMENT ON COLUMN public.dot_iu_command_catalog.mutating IS "
        "'Whether applying the command changes IU Core state.'"
    )

    _execute(
        r"""
CREATE TABLE public.dot_iu_command_run (
    run_id bigint GENERATED ALWAYS AS IDENTITY,
    command_name text NOT NULL,
    run_mode text NOT NULL,
    run_status text NOT NULL,
    mutating boolean NOT NULL,
    actor text NOT NULL,
    params_digest text NOT NULL,
    gate_snapshot jsonb NOT NULL DEFAULT '{}'::jsonb,
    evidence jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT pk_dot_iu_command_run PRIMARY KEY (run_id),
    CONSTRAINT ck_dot_iu_command_run_command_name CHECK (command_name ~ '^dot_iu_[a-z0-9_]+$'),
    CONSTRAINT ck_dot_iu_command_run_run_mode CHECK (run_mode IN ('plan', 'apply', 'verify')),
    CONSTRAINT ck_dot_iu_command_run_run_status
        CHECK (run_status IN ('planned', 'applied', 'verified', 'refused', 'failed')),
    CONSTRAINT ck_dot_iu_command_run_status_matches_mode
        CHECK (run_status IN ('refused', 'failed')
               OR (run_mode = 'plan' AND run_status = 'planned')
               OR (run_mode = 'apply' AND run_status = 'applied')
               OR (run_mode = 'verify' AND run_status = 'verified')),
    CONSTRAINT ck_dot_iu_command_run_actor_not_blank CHECK (actor ~ '[^[:space:]]'),
    CONSTRAINT ck_dot_iu_command_run_params_digest_md5 CHECK (params_digest ~ '^[0-9a-f]{32}$'),
    CONSTRAINT ck_dot_iu_command_run_gate_snapshot_object
        CHECK (pg_catalog.jsonb_typeof(gate_snapshot) = 'object'),
    CONSTRAINT ck_dot_iu_command_run_evidence_object
        CHECK (pg_catalog.jsonb_typeof(evidence) = 'object')
)"""
    )
    for name, columns in RUN_INDEXES:
        _execute(f"CREATE INDEX {name} ON public.dot_iu_command_run ({columns})")
    _execute("REVOKE ALL ON TABLE public.dot_iu_command_run FROM PUBLIC")
    _execute(
        "COMMENT ON TABLE public.dot_iu_command_run IS "
        "'Append-only run ledger: one row per plan/apply/verify invocation of a catalogued "
        "command, refusals included. Written only by fn_dot_iu_command_log; UPDATE is refused, "
        "DELETE only under SET LOCAL dot_iu.ledger_maintenance = ''on''.'"
    )
    _execute(
        "COMMENT ON COLUMN public.dot_iu_command_run.params_digest IS "
        "'md5 of the canonical parameters (32 lowercase hex); raw parameter values are never "
        "stored.'"
    )
    _execute(
        "COMMENT ON COLUMN public.dot_iu_command_run.gate_snapshot IS "
        "'Every known gate and its value when the run was recorded.'"
    )
    _execute(
        "COMMENT ON COLUMN public.dot_iu_command_run.evidence IS "
        "'What the run observed or produced (ids, counts, refusal SQLSTATE); never secrets.'"
    )
    _execute(
        "COMMENT ON COLUMN public.dot_iu_command_run.mutating IS "
        "'Copied from the catalog when the run was recorded.'"
    )

    _create_function("fn_dot_iu_append_only_guard.v1.sql")
    _execute("REVOKE ALL ON FUNCTION public.fn_dot_iu_append_only_guard() FROM PUBLIC")
    _execute(
        "COMMENT ON FUNCTION public.fn_dot_iu_append_only_guard() IS "
        "'Trigger: keeps a ledger append-only (UPDATE refused; DELETE/TRUNCATE only under "
        "dot_iu.ledger_maintenance = on). SQLSTATE 55000.'"
    )
    for name, timing, level in RUN_TRIGGERS:
        _execute(
            f"CREATE TRIGGER {name} {timing} ON public.dot_iu_command_run "
            f"{level} EXECUTE FUNCTION public.fn_dot_iu_append_only_guard()"
        )

    _create_function("fn_dot_iu_command_log.v1.sql")
    _execute(f"REVOKE ALL ON FUNCTION {LOG_SIGNATURE} FROM PUBLIC")
    _execute(
        f"COMMENT ON FUNCTION {LOG_SIGNATURE} IS "
        "'The only writer of the run ledger; returns run_id. Ungated; raises 23503 for a "
        "command absent from a non-empty catalog.'"
    )

    _execute(REGISTRY_VIEW_V1)
    _execute("REVOKE ALL ON TABLE public.v_dot_iu_command_registry FROM PUBLIC")
    _execute(
        "COMMENT ON VIEW public.v_dot_iu_command_registry IS "
        "'Every catalogued command with its ledger aggregates and whether its target function "
        "resolves.'"
    )
    _execute(HEALTH_VIEW_V1)
    _execute("REVOKE ALL ON TABLE public.v_dot_iu_command_run_health FROM PUBLIC")
    _execute(
        "COMMENT ON VIEW public.v_dot_iu_command_run_health IS "
        "'Exactly one row: ledger totals, distinct commands, catalog size, last run.'"
    )


def downgrade() -> None:
    _begin(expected_version=revision)
    allow_data_loss = "true" if _option("allow_data_loss", False) else "false"
    _execute(
        f"""
DO $rollback$
DECLARE
    v_runs bigint := (SELECT pg_catalog.count(*) FROM public.dot_iu_command_run);
    v_commands bigint := (SELECT pg_catalog.count(*) FROM public.dot_iu_command_catalog);
    v_gate text := (SELECT c.value FROM public.dot_config AS c
                     WHERE c.key = 'iu_core.operator_runtime_enabled');
BEGIN
    RAISE NOTICE 'pre-rollback snapshot: dot_iu_command_run % row(s), dot_iu_command_catalog % row(s), iu_core.operator_runtime_enabled = %',
        v_runs, v_commands, coalesce(v_gate, '<missing>');
    IF v_runs > 0 AND NOT {allow_data_loss} THEN
        RAISE EXCEPTION 'refusing to drop the run ledger: it holds % row(s)', v_runs
            USING ERRCODE = '55000',
                  HINT = 'Export it first, then re-run with -x allow_data_loss=true.';
    END IF;
    IF v_runs > 0 THEN
        RAISE NOTICE 'allow_data_loss=true: dropping % ledger row(s)', v_runs;
    END IF;
END
$rollback$"""
    )
    _execute("DROP VIEW public.v_dot_iu_command_run_health")
    _execute("DROP VIEW public.v_dot_iu_command_registry")
    for name, _, _ in reversed(RUN_TRIGGERS):
        _execute(f"DROP TRIGGER {name} ON public.dot_iu_command_run")
    _execute(f"DROP FUNCTION {LOG_SIGNATURE}")
    _execute("DROP FUNCTION public.fn_dot_iu_append_only_guard()")
    _execute("DROP FUNCTION public.fn_dot_iu_operator_runtime_enabled()")
    for name, _ in reversed(RUN_INDEXES):
        _execute(f"DROP INDEX public.{name}")
    _execute("DROP TABLE public.dot_iu_command_run")
    _execute("DROP TABLE public.dot_iu_command_catalog")
    _execute("DELETE FROM public.dot_config WHERE key = 'iu_core.operator_runtime_enabled'")
