"""Run tally: registry and health views in O(commands), not O(ledger); a faster logger.

Revision ID: 0008_run_tally
Revises: 0007_runtime_reader_v2

Creates:
- table dot_iu_command_run_tally: run counts per (command_name, run_mode, run_status), folded;
- table dot_iu_command_run_tally_delta: the counts not folded yet, one row per ledger insert
  (+1) or per key of a maintenance DELETE (-n); unindexed, so writing it costs the ledger's
  writers little and none of them ever waits on another. The exact count of a key is its tally
  row plus its deltas, read in one snapshot;
- the triggers that write the deltas in the writer's transaction (a rolled-back write leaves no
  trace), for every path into the ledger, the logger's and any other:
  tg_dot_iu_command_run_tally_insert (AFTER INSERT, per row, fn_dot_iu_command_run_tally_insert
  v1, which also folds on about one write in 1024), tg_dot_iu_command_run_tally_delete (AFTER
  DELETE, per statement over the transition table, fn_dot_iu_command_run_tally_delete v1) and
  tg_dot_iu_command_run_tally_truncate (AFTER TRUNCATE, fn_dot_iu_command_run_tally_truncate v1);
- fn_dot_iu_command_run_tally_fold() v1: moves the visible deltas into the tally (one fold at a
  time, never waiting);
- fn_dot_iu_command_run_tally_rebuild() v1: recounts the tally from the ledger under a SHARE
  lock and reports what it found; the upgrade calls it to backfill an existing ledger (so it
  holds that lock while it counts: seconds per ten million rows);
- fn_dot_iu_command_log(...) v2: same signature and contract, one statement in the common case;
- v_dot_iu_command_registry and v_dot_iu_command_run_health v2: the same columns, types and
  numbers as v1 (SPEC 3.2), the counts read from the tally and its deltas, last_run_at /
  last_status from the existing (command_name, created_at DESC) and (run_status, created_at
  DESC) indexes with LIMIT 1 (ties broken by run_id DESC, as v1 does).
Requires: 0007_runtime_reader_v2 (the ledger, its logger v1 and the v1 views from
0003_operator_runtime).
Reverses: restores the v1 views (their text frozen below, as 0003 created them) and comments,
re-runs the logger's v1 file, then drops the rebuild function, the triggers, the trigger
functions, the fold function and the two tables, in that order, no CASCADE. The counts are derived from
the ledger, so dropping them loses nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0008_run_tally"
down_revision = "0007_runtime_reader_v2"
branch_labels = None
depends_on = None

LEDGER = "public.dot_iu_command_run"
TALLY = "public.dot_iu_command_run_tally"
DELTA = "public.dot_iu_command_run_tally_delta"
FOLD = "public.fn_dot_iu_command_run_tally_fold()"
REBUILD = "public.fn_dot_iu_command_run_tally_rebuild()"
# (version file, signature, comment) of the trigger functions, in creation order.
TRIGGER_FUNCTIONS = (
    (
        "fn_dot_iu_command_run_tally_insert.v1.sql",
        "public.fn_dot_iu_command_run_tally_insert()",
        "Trigger: appends a +1 delta for each new ledger row to dot_iu_command_run_tally_delta, "
        "in the writer''s transaction; folds the deltas on about one write in 1024.",
    ),
    (
        "fn_dot_iu_command_run_tally_delete.v1.sql",
        "public.fn_dot_iu_command_run_tally_delete()",
        "Trigger: appends one negative delta per key of the rows a maintenance DELETE removed "
        "from the ledger to dot_iu_command_run_tally_delta.",
    ),
    (
        "fn_dot_iu_command_run_tally_truncate.v1.sql",
        "public.fn_dot_iu_command_run_tally_truncate()",
        "Trigger: empties dot_iu_command_run_tally and its deltas when a maintenance TRUNCATE "
        "empties the ledger.",
    ),
)
# (name, timing and event, level, function) of the triggers on the ledger.
TALLY_TRIGGERS = (
    ("tg_dot_iu_command_run_tally_insert", "AFTER INSERT", "FOR EACH ROW",
     "public.fn_dot_iu_command_run_tally_insert()"),
    ("tg_dot_iu_command_run_tally_delete", "AFTER DELETE",
     "REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT",
     "public.fn_dot_iu_command_run_tally_delete()"),
    ("tg_dot_iu_command_run_tally_truncate", "AFTER TRUNCATE", "FOR EACH STATEMENT",
     "public.fn_dot_iu_command_run_tally_truncate()"),
)
TALLY_COMMENT = (
    "Ledger run counts per (command_name, run_mode, run_status), folded from "
    "dot_iu_command_run_tally_delta; a key''s exact count is its row here plus its deltas. "
    "Derived state, read by the registry and health views: fn_dot_iu_command_run_tally_rebuild() "
    "recounts it from the ledger. No CHECK on runs: a fold upserts a key''s delta sum, which "
    "is negative when a DELETE''s deltas meet +1s folded earlier."
)
DELTA_COMMENT = (
    "Run counts not folded into dot_iu_command_run_tally yet: +1 per ledger insert, -n per key "
    "of a maintenance DELETE, written by triggers on the ledger in the writer''s transaction; "
    "fn_dot_iu_command_run_tally_fold() moves them. No index and no CHECK: each would cost every "
    "ledger write. Autovacuum is told to reclaim folded rows early."
)
FOLD_COMMENT = (
    "Moves the visible deltas into dot_iu_command_run_tally and returns how many it moved; 0 "
    "when another fold runs, when this transaction already folded, or outside READ COMMITTED."
)
REBUILD_COMMENT = (
    "Recounts dot_iu_command_run_tally from the ledger and empties its deltas, under a SHARE "
    "lock on the ledger (writers wait); returns {runs, commands, tally_rows, runs_before, "
    "deltas_before}."
)

REGISTRY_COMMENT_V1 = (
    "Every catalogued command with its ledger aggregates and whether its target function "
    "resolves."
)
REGISTRY_COMMENT_V2 = (
    "Every catalogued command with its ledger aggregates and whether its target function "
    "resolves. Counts come from dot_iu_command_run_tally and its deltas, last run from the "
    "ledger''s (command_name, created_at DESC) index: cost grows with the commands, not the "
    "ledger."
)
HEALTH_COMMENT_V1 = "Exactly one row: ledger totals, distinct commands, catalog size, last run."
HEALTH_COMMENT_V2 = (
    "Exactly one row: ledger totals, distinct commands, catalog size, last run. Counts come "
    "from dot_iu_command_run_tally and its deltas, last run from the ledger''s (run_status, "
    "created_at DESC) index: cost grows with the commands, not the ledger."
)

# v1, frozen as 0003_operator_runtime created them (CREATE OR REPLACE: same columns).
REGISTRY_VIEW_V1 = """
CREATE OR REPLACE VIEW public.v_dot_iu_command_registry AS
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
CREATE OR REPLACE VIEW public.v_dot_iu_command_run_health AS
SELECT pg_catalog.count(*) AS total_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_mode = 'apply') AS apply_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_status = 'applied') AS applied_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_status = 'refused') AS refused_runs,
       pg_catalog.count(*) FILTER (WHERE run.run_status = 'failed') AS failed_runs,
       pg_catalog.count(DISTINCT run.command_name) AS distinct_commands,
       (SELECT pg_catalog.count(*) FROM public.dot_iu_command_catalog) AS catalog_size,
       pg_catalog.max(run.created_at) AS last_run_at
  FROM public.dot_iu_command_run AS run"""

# v2: the same columns, in the same order, with the same types.
REGISTRY_VIEW_V2 = """
CREATE OR REPLACE VIEW public.v_dot_iu_command_registry AS
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
       last_run.created_at AS last_run_at,
       last_run.run_status AS last_status
  FROM public.dot_iu_command_catalog AS c
  LEFT JOIN (
        SELECT counted.command_name,
               pg_catalog.sum(counted.runs)::bigint AS total_runs,
               (pg_catalog.sum(counted.runs) FILTER (WHERE counted.run_status = 'applied'))::bigint
                   AS applied_runs,
               (pg_catalog.sum(counted.runs) FILTER (WHERE counted.run_status = 'refused'))::bigint
                   AS refused_runs,
               (pg_catalog.sum(counted.runs) FILTER (WHERE counted.run_status = 'failed'))::bigint
                   AS failed_runs
          FROM (SELECT t.command_name, t.run_status, t.runs
                  FROM public.dot_iu_command_run_tally AS t
                UNION ALL
                SELECT d.command_name, d.run_status, d.runs
                  FROM public.dot_iu_command_run_tally_delta AS d) AS counted
         GROUP BY counted.command_name
       ) AS r ON r.command_name = c.command_name
  LEFT JOIN LATERAL (
        SELECT run.created_at, run.run_status
          FROM public.dot_iu_command_run AS run
         WHERE run.command_name = c.command_name
         ORDER BY run.created_at DESC, run.run_id DESC
         LIMIT 1
       ) AS last_run ON true"""

HEALTH_VIEW_V2 = """
CREATE OR REPLACE VIEW public.v_dot_iu_command_run_health AS
WITH counted AS (
    SELECT u.command_name, u.run_mode, u.run_status, pg_catalog.sum(u.runs) AS runs
      FROM (SELECT t.command_name, t.run_mode, t.run_status, t.runs
              FROM public.dot_iu_command_run_tally AS t
            UNION ALL
            SELECT d.command_name, d.run_mode, d.run_status, d.runs
              FROM public.dot_iu_command_run_tally_delta AS d) AS u
     GROUP BY u.command_name, u.run_mode, u.run_status
)
SELECT coalesce(pg_catalog.sum(counted.runs), 0)::bigint AS total_runs,
       coalesce(pg_catalog.sum(counted.runs) FILTER (WHERE counted.run_mode = 'apply'),
                0)::bigint AS apply_runs,
       coalesce(pg_catalog.sum(counted.runs) FILTER (WHERE counted.run_status = 'applied'),
                0)::bigint AS applied_runs,
       coalesce(pg_catalog.sum(counted.runs) FILTER (WHERE counted.run_status = 'refused'),
                0)::bigint AS refused_runs,
       coalesce(pg_catalog.sum(counted.runs) FILTER (WHERE counted.run_status = 'failed'),
                0)::bigint AS failed_runs,
       (SELECT pg_catalog.count(DISTINCT k.command_name) FROM counted AS k WHERE k.runs > 0)
           AS distinct_commands,
       (SELECT pg_catalog.count(*) FROM public.dot_iu_command_catalog) AS catalog_size,
       (SELECT pg_catalog.max(last_run.created_at)
          FROM (SELECT DISTINCT k.run_status FROM counted AS k WHERE k.runs > 0) AS status
          CROSS JOIN LATERAL (
                SELECT run.created_at
                  FROM public.dot_iu_command_run AS run
                 WHERE run.run_status = status.run_status
                 ORDER BY run.created_at DESC
                 LIMIT 1
               ) AS last_run) AS last_run_at
  FROM counted"""


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
        f"""
CREATE TABLE {TALLY} (
    command_name text NOT NULL,
    run_mode text NOT NULL,
    run_status text NOT NULL,
    runs bigint NOT NULL,
    CONSTRAINT pk_dot_iu_command_run_tally PRIMARY KEY (command_name, run_mode, run_status)
)"""
    )
    _execute(f"REVOKE ALL ON TABLE {TALLY} FROM PUBLIC")
    _execute(f"COMMENT ON TABLE {TALLY} IS '{TALLY_COMMENT}'")
    _execute(
        f"""
CREATE TABLE {DELTA} (
    command_name text NOT NULL,
    run_mode text NOT NULL,
    run_status text NOT NULL,
    runs bigint NOT NULL
) WITH (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0)"""
    )
    _execute(f"REVOKE ALL ON TABLE {DELTA} FROM PUBLIC")
    _execute(f"COMMENT ON TABLE {DELTA} IS '{DELTA_COMMENT}'")

    _create_function("fn_dot_iu_command_run_tally_fold.v1.sql")
    _execute(f"REVOKE ALL ON FUNCTION {FOLD} FROM PUBLIC")
    _execute(f"COMMENT ON FUNCTION {FOLD} IS '{FOLD_COMMENT}'")
    for version_file, signature, comment in TRIGGER_FUNCTIONS:
        _create_function(version_file)
        _execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        _execute(f"COMMENT ON FUNCTION {signature} IS '{comment}'")
    for name, event, level, function in TALLY_TRIGGERS:
        _execute(f"CREATE TRIGGER {name} {event} ON {LEDGER} {level} EXECUTE FUNCTION {function}")

    # After the triggers, in the same transaction: no write can slip between count and trigger.
    _create_function("fn_dot_iu_command_run_tally_rebuild.v1.sql")
    _execute(f"REVOKE ALL ON FUNCTION {REBUILD} FROM PUBLIC")
    _execute(f"COMMENT ON FUNCTION {REBUILD} IS '{REBUILD_COMMENT}'")
    _execute(
        f"""
DO $backfill$
BEGIN
    RAISE NOTICE 'dot_iu_command_run_tally backfilled from the ledger: %', {REBUILD};
END
$backfill$"""
    )

    _create_function("fn_dot_iu_command_log.v2.sql")

    _execute(REGISTRY_VIEW_V2)
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_registry IS '{REGISTRY_COMMENT_V2}'")
    _execute(HEALTH_VIEW_V2)
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_run_health IS '{HEALTH_COMMENT_V2}'")


def downgrade() -> None:
    _begin(expected_version=revision)
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_run_health IS '{HEALTH_COMMENT_V1}'")
    _execute(HEALTH_VIEW_V1)
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_registry IS '{REGISTRY_COMMENT_V1}'")
    _execute(REGISTRY_VIEW_V1)

    _create_function("fn_dot_iu_command_log.v1.sql")

    _execute(f"DROP FUNCTION {REBUILD}")

    for name, _, _, _ in reversed(TALLY_TRIGGERS):
        _execute(f"DROP TRIGGER {name} ON {LEDGER}")
    for _, signature, _ in reversed(TRIGGER_FUNCTIONS):
        _execute(f"DROP FUNCTION {signature}")
    _execute(f"DROP FUNCTION {FOLD}")

    _execute(f"DROP TABLE {DELTA}")
    _execute(f"DROP TABLE {TALLY}")
