"""Run tally watermark and gate snapshot row: a logger that writes nothing but the run.

Revision ID: 0009_tally_watermark
Revises: 0008_run_tally

Why: 0008's per-row tally trigger and the logger's per-call aggregate over dot_config cost the
logger most of its margin over a plain INSERT (make bench, item 1). This step removes both from
the write path; the views keep their columns and numbers.
Creates:
- table dot_iu_command_run_tally_watermark (one row): folded_through, the run_id at or below
  which dot_iu_command_run_tally counts every ledger row, and the candidate a fold recorded for
  the next move (candidate_through, candidate_writers, the transactions then writing the ledger);
- fn_dot_iu_command_run_tally_fold() v2: promotes the candidate once its writers have ended and
  records the next one, never waiting; the logger calls it on about one run in 1024;
- fn_dot_iu_command_run_tally_delete() v2 and fn_dot_iu_command_run_tally_truncate() v2 (same
  triggers): a maintenance DELETE takes its rows at or below the watermark off the tally, a
  TRUNCATE empties it and moves the watermark back to 0;
- fn_dot_iu_command_run_tally_rebuild() v2: recounts the whole ledger, watermark at its last run;
- table dot_iu_gate_snapshot (one row): the current value of every gate of fn_iu_gate_classes()
  as one jsonb object, kept by fn_dot_iu_gate_snapshot_refresh() v1, which the statement trigger
  tg_dot_config_gate_snapshot (AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dot_config,
  fn_dot_iu_gate_snapshot_sync() v1) calls in the gate writer's transaction;
- fn_iu_gate_open, fn_iu_gate_close and fn_iu_gate_watchdog v2: each locks the snapshot row
  before the gate row, so gate writers take their locks in one order (no crosswise waits);
- fn_dot_iu_command_log(...) v3: same signature and contract; copies the snapshot row instead of
  aggregating dot_config, and writes nothing for the views;
- v_dot_iu_command_registry and v_dot_iu_command_run_health v3: the same columns, types and
  numbers; counts = the tally plus the ledger rows past the watermark (a primary-key range).
Drops: tg_dot_iu_command_run_tally_insert, fn_dot_iu_command_run_tally_insert() and
dot_iu_command_run_tally_delta, once their deltas are folded into the tally.
Locks: SHARE ROW EXCLUSIVE on the ledger for the step (in-flight writers finish first, new ones
wait), so the deltas fold and the watermark lands on an exact count; O(deltas), not O(ledger).
Requires: 0008_run_tally.
Reverses: restores the deltas table, the v2 views, logger v2 and the v1 gate writers, drops the
snapshot row's trigger, functions and table, restores the v1 fold, delete, truncate and rebuild
functions with their comments and the deltas' insert trigger, drops the watermark table, then
recounts the tally from the ledger with the v1 rebuild (under the same lock: seconds per ten
million rows) and says so in a NOTICE. No CASCADE; nothing but derived state is dropped.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0009_tally_watermark"
down_revision = "0008_run_tally"
branch_labels = None
depends_on = None

LEDGER = "public.dot_iu_command_run"
TALLY = "public.dot_iu_command_run_tally"
DELTA = "public.dot_iu_command_run_tally_delta"
WATERMARK = "public.dot_iu_command_run_tally_watermark"
SNAPSHOT = "public.dot_iu_gate_snapshot"
FOLD = "public.fn_dot_iu_command_run_tally_fold()"
REBUILD = "public.fn_dot_iu_command_run_tally_rebuild()"
INSERT_FN = "public.fn_dot_iu_command_run_tally_insert()"
INSERT_TRIGGER = "tg_dot_iu_command_run_tally_insert"
REFRESH = "public.fn_dot_iu_gate_snapshot_refresh()"
SYNC = "public.fn_dot_iu_gate_snapshot_sync()"
SNAPSHOT_TRIGGER = "tg_dot_config_gate_snapshot"
# The gate writers: v2 locks the snapshot row before the gate row (same signatures, so their
# privileges and comments carry over).
GATE_WRITERS = ("fn_iu_gate_open", "fn_iu_gate_close", "fn_iu_gate_watchdog")

# (signature, v1 file, v2 file, v1 comment as 0008 set it, v2 comment)
TALLY_FUNCTIONS = (
    (
        FOLD,
        "fn_dot_iu_command_run_tally_fold.v1.sql",
        "fn_dot_iu_command_run_tally_fold.v2.sql",
        "Moves the visible deltas into dot_iu_command_run_tally and returns how many it moved; 0 "
        "when another fold runs, when this transaction already folded, or outside READ "
        "COMMITTED.",
        "Moves the run tally''s watermark: counts the ledger rows up to the candidate an earlier "
        "fold recorded once the transactions then writing the ledger have ended, records the "
        "next candidate, returns how many rows it counted; never waits (0 when the watermark row "
        "is busy or missing, or outside READ COMMITTED).",
    ),
    (
        "public.fn_dot_iu_command_run_tally_delete()",
        "fn_dot_iu_command_run_tally_delete.v1.sql",
        "fn_dot_iu_command_run_tally_delete.v2.sql",
        "Trigger: appends one negative delta per key of the rows a maintenance DELETE removed "
        "from the ledger to dot_iu_command_run_tally_delta.",
        "Trigger: takes the rows a maintenance DELETE removed at or below the watermark off "
        "dot_iu_command_run_tally, after any fold in flight.",
    ),
    (
        "public.fn_dot_iu_command_run_tally_truncate()",
        "fn_dot_iu_command_run_tally_truncate.v1.sql",
        "fn_dot_iu_command_run_tally_truncate.v2.sql",
        "Trigger: empties dot_iu_command_run_tally and its deltas when a maintenance TRUNCATE "
        "empties the ledger.",
        "Trigger: empties dot_iu_command_run_tally and moves its watermark back to 0 when a "
        "maintenance TRUNCATE empties the ledger.",
    ),
    (
        REBUILD,
        "fn_dot_iu_command_run_tally_rebuild.v1.sql",
        "fn_dot_iu_command_run_tally_rebuild.v2.sql",
        "Recounts dot_iu_command_run_tally from the ledger and empties its deltas, under a SHARE "
        "lock on the ledger (writers wait); returns {runs, commands, tally_rows, runs_before, "
        "deltas_before}.",
        "Recounts dot_iu_command_run_tally from the ledger and puts its watermark at the last "
        "run, under a SHARE lock on the ledger (writers wait); returns {runs, commands, "
        "tally_rows, runs_before, folded_through}.",
    ),
)
INSERT_FN_COMMENT = (
    "Trigger: appends a +1 delta for each new ledger row to dot_iu_command_run_tally_delta, "
    "in the writer''s transaction; folds the deltas on about one write in 1024."
)
TALLY_COMMENT_V1 = (
    "Ledger run counts per (command_name, run_mode, run_status), folded from "
    "dot_iu_command_run_tally_delta; a key''s exact count is its row here plus its deltas. "
    "Derived state, read by the registry and health views: fn_dot_iu_command_run_tally_rebuild() "
    "recounts it from the ledger. No CHECK on runs: a fold upserts a key''s delta sum, which "
    "is negative when a DELETE''s deltas meet +1s folded earlier."
)
TALLY_COMMENT_V2 = (
    "Ledger run counts per (command_name, run_mode, run_status) of every row with run_id at or "
    "below dot_iu_command_run_tally_watermark.folded_through; the views add the rows past it. "
    "Derived state: fn_dot_iu_command_run_tally_rebuild() recounts it from the ledger."
)
DELTA_COMMENT = (
    "Run counts not folded into dot_iu_command_run_tally yet: +1 per ledger insert, -n per key "
    "of a maintenance DELETE, written by triggers on the ledger in the writer''s transaction; "
    "fn_dot_iu_command_run_tally_fold() moves them. No index and no CHECK: each would cost every "
    "ledger write. Autovacuum is told to reclaim folded rows early."
)
WATERMARK_COMMENT = (
    "One row: dot_iu_command_run_tally counts every ledger row with run_id <= folded_through. "
    "candidate_through / candidate_writers: where the next fold may move it, once those "
    "transactions (virtual transaction ids, from pg_locks) no longer hold a lock on the ledger. "
    "Written only by the tally functions."
)
SNAPSHOT_COMMENT = (
    "One row: the current value of every gate of fn_iu_gate_classes() held in dot_config, as "
    "the jsonb object the logger records as a run''s gate_snapshot. Kept by "
    "fn_dot_iu_gate_snapshot_refresh(), which tg_dot_config_gate_snapshot calls after every "
    "write to dot_config, in the writer''s transaction."
)
REFRESH_COMMENT = (
    "Recomputes dot_iu_gate_snapshot from dot_config (after locking its row) and returns it."
)
SYNC_COMMENT = (
    "Trigger: refreshes dot_iu_gate_snapshot after every write to dot_config, in the writer''s "
    "transaction."
)
REGISTRY_COMMENT_V2 = (
    "Every catalogued command with its ledger aggregates and whether its target function "
    "resolves. Counts come from dot_iu_command_run_tally and its deltas, last run from the "
    "ledger''s (command_name, created_at DESC) index: cost grows with the commands, not the "
    "ledger."
)
REGISTRY_COMMENT_V3 = (
    "Every catalogued command with its ledger aggregates and whether its target function "
    "resolves. Counts come from dot_iu_command_run_tally plus the ledger rows past its watermark "
    "(a primary-key range), last run from the ledger''s (command_name, created_at DESC) index: "
    "cost grows with the commands, not the ledger."
)
HEALTH_COMMENT_V2 = (
    "Exactly one row: ledger totals, distinct commands, catalog size, last run. Counts come "
    "from dot_iu_command_run_tally and its deltas, last run from the ledger''s (run_status, "
    "created_at DESC) index: cost grows with the commands, not the ledger."
)
HEALTH_COMMENT_V3 = (
    "Exactly one row: ledger totals, distinct commands, catalog size, last run. Counts come "
    "from dot_iu_command_run_tally plus the ledger rows past its watermark (a primary-key "
    "range), last run from the ledger''s (run_status, created_at DESC) index: cost grows with "
    "the commands, not the ledger."
)

# v2, frozen as 0008_run_tally created them (CREATE OR REPLACE: same columns).
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

# v3: the same columns, in the same order, with the same types. The rows past the watermark are
# bounded by the last run as well (always true): with both ends of the range unknown at plan time
# the planner estimates a small slice of the ledger, not a third of it, so it neither sizes its
# hash tables by the ledger nor plans parallel workers for the ~2,000 rows it reads.
REGISTRY_VIEW_V3 = """
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
                SELECT run.command_name, run.run_status, 1::bigint
                  FROM public.dot_iu_command_run AS run
                 WHERE run.run_id > (SELECT w.folded_through
                                       FROM public.dot_iu_command_run_tally_watermark AS w)
                   AND run.run_id <= (SELECT pg_catalog.max(m.run_id)
                                        FROM public.dot_iu_command_run AS m)) AS counted
         GROUP BY counted.command_name
       ) AS r ON r.command_name = c.command_name
  LEFT JOIN LATERAL (
        SELECT run.created_at, run.run_status
          FROM public.dot_iu_command_run AS run
         WHERE run.command_name = c.command_name
         ORDER BY run.created_at DESC, run.run_id DESC
         LIMIT 1
       ) AS last_run ON true"""

HEALTH_VIEW_V3 = """
CREATE OR REPLACE VIEW public.v_dot_iu_command_run_health AS
WITH counted AS (
    SELECT u.command_name, u.run_mode, u.run_status, pg_catalog.sum(u.runs) AS runs
      FROM (SELECT t.command_name, t.run_mode, t.run_status, t.runs
              FROM public.dot_iu_command_run_tally AS t
            UNION ALL
            SELECT run.command_name, run.run_mode, run.run_status, 1::bigint
              FROM public.dot_iu_command_run AS run
             WHERE run.run_id > (SELECT w.folded_through
                                   FROM public.dot_iu_command_run_tally_watermark AS w)
               AND run.run_id <= (SELECT pg_catalog.max(m.run_id)
                                    FROM public.dot_iu_command_run AS m)) AS u
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


def _lock_ledger() -> None:
    """In-flight writers finish first and new ones wait: the counts below are exact."""
    _execute(f"LOCK TABLE {LEDGER} IN SHARE ROW EXCLUSIVE MODE")


def upgrade() -> None:
    _begin(expected_version=down_revision)
    _lock_ledger()

    _execute(
        f"""
CREATE TABLE {WATERMARK} (
    singleton boolean NOT NULL DEFAULT true,
    folded_through bigint NOT NULL,
    candidate_through bigint,
    candidate_writers text[],
    folded_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT pk_dot_iu_command_run_tally_watermark PRIMARY KEY (singleton),
    CONSTRAINT ck_dot_iu_command_run_tally_watermark_singleton CHECK (singleton),
    CONSTRAINT ck_dot_iu_command_run_tally_watermark_folded_through CHECK (folded_through >= 0)
)"""
    )
    _execute(f"REVOKE ALL ON TABLE {WATERMARK} FROM PUBLIC")
    _execute(f"COMMENT ON TABLE {WATERMARK} IS '{WATERMARK_COMMENT}'")
    # 0008's invariant (tally plus deltas = the ledger), with no writer in flight: fold the
    # deltas and put the watermark at the last run.
    _execute(
        f"""
DO $carry$
DECLARE
    v_deltas bigint;
    v_runs bigint;
    v_through bigint;
BEGIN
    WITH moved AS (
        DELETE FROM {DELTA} AS d
        RETURNING d.command_name, d.run_mode, d.run_status, d.runs
    ), summed AS (
        SELECT m.command_name, m.run_mode, m.run_status, pg_catalog.sum(m.runs)::bigint AS runs,
               pg_catalog.count(*) AS deltas
          FROM moved AS m
         GROUP BY m.command_name, m.run_mode, m.run_status
    ), folded AS (
        INSERT INTO {TALLY} AS t (command_name, run_mode, run_status, runs)
        SELECT s.command_name, s.run_mode, s.run_status, s.runs FROM summed AS s
        ON CONFLICT (command_name, run_mode, run_status)
        DO UPDATE SET runs = t.runs + EXCLUDED.runs
    )
    SELECT coalesce(pg_catalog.sum(s.deltas), 0) INTO v_deltas FROM summed AS s;
    DELETE FROM {TALLY} AS t WHERE t.runs = 0;
    SELECT coalesce(pg_catalog.max(run.run_id), 0) INTO v_through FROM {LEDGER} AS run;
    INSERT INTO {WATERMARK} (singleton, folded_through) VALUES (true, v_through);
    SELECT coalesce(pg_catalog.sum(t.runs), 0) INTO v_runs FROM {TALLY} AS t;
    RAISE NOTICE 'dot_iu_command_run_tally carried over: % run(s), % delta(s) folded, watermark at run_id %',
        v_runs, v_deltas, v_through;
END
$carry$"""
    )
    # The views stop reading the deltas before they go.
    _execute(REGISTRY_VIEW_V3)
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_registry IS '{REGISTRY_COMMENT_V3}'")
    _execute(HEALTH_VIEW_V3)
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_run_health IS '{HEALTH_COMMENT_V3}'")
    _execute(f"DROP TRIGGER {INSERT_TRIGGER} ON {LEDGER}")
    _execute(f"DROP FUNCTION {INSERT_FN}")
    _execute(f"DROP TABLE {DELTA}")
    _execute(f"COMMENT ON TABLE {TALLY} IS '{TALLY_COMMENT_V2}'")
    for signature, _, version_file, _, comment in TALLY_FUNCTIONS:
        _create_function(version_file)
        _execute(f"COMMENT ON FUNCTION {signature} IS '{comment}'")

    _execute(
        f"""
CREATE TABLE {SNAPSHOT} (
    singleton boolean NOT NULL DEFAULT true,
    snapshot jsonb NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT pk_dot_iu_gate_snapshot PRIMARY KEY (singleton),
    CONSTRAINT ck_dot_iu_gate_snapshot_singleton CHECK (singleton),
    CONSTRAINT ck_dot_iu_gate_snapshot_object CHECK (pg_catalog.jsonb_typeof(snapshot) = 'object')
)"""
    )
    _execute(f"REVOKE ALL ON TABLE {SNAPSHOT} FROM PUBLIC")
    _execute(f"COMMENT ON TABLE {SNAPSHOT} IS '{SNAPSHOT_COMMENT}'")
    for version_file, signature, comment in (
        ("fn_dot_iu_gate_snapshot_refresh.v1.sql", REFRESH, REFRESH_COMMENT),
        ("fn_dot_iu_gate_snapshot_sync.v1.sql", SYNC, SYNC_COMMENT),
    ):
        _create_function(version_file)
        _execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        _execute(f"COMMENT ON FUNCTION {signature} IS '{comment}'")
    _execute(
        f"CREATE TRIGGER {SNAPSHOT_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
        f" ON public.dot_config FOR EACH STATEMENT EXECUTE FUNCTION {SYNC}"
    )
    # After the trigger, in the same transaction: no gate change can slip between the two.
    _execute(
        f"""
DO $snapshot$
BEGIN
    RAISE NOTICE 'dot_iu_gate_snapshot: %', {REFRESH};
END
$snapshot$"""
    )

    for name in GATE_WRITERS:
        _create_function(f"{name}.v2.sql")
    _create_function("fn_dot_iu_command_log.v3.sql")


def downgrade() -> None:
    _begin(expected_version=revision)
    _lock_ledger()
    # The v2 views read the deltas: they come back first (empty; the recount below fills the
    # tally).
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
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_run_health IS '{HEALTH_COMMENT_V2}'")
    _execute(HEALTH_VIEW_V2)
    _execute(f"COMMENT ON VIEW public.v_dot_iu_command_registry IS '{REGISTRY_COMMENT_V2}'")
    _execute(REGISTRY_VIEW_V2)
    _create_function("fn_dot_iu_command_log.v2.sql")

    for name in reversed(GATE_WRITERS):
        _create_function(f"{name}.v1.sql")
    _execute(f"DROP TRIGGER {SNAPSHOT_TRIGGER} ON public.dot_config")
    _execute(f"DROP FUNCTION {SYNC}")
    _execute(f"DROP FUNCTION {REFRESH}")
    _execute(f"DROP TABLE {SNAPSHOT}")

    _execute(f"COMMENT ON TABLE {TALLY} IS '{TALLY_COMMENT_V1}'")
    for signature, version_file, _, comment, _ in TALLY_FUNCTIONS:
        _create_function(version_file)
        _execute(f"COMMENT ON FUNCTION {signature} IS '{comment}'")
    _create_function("fn_dot_iu_command_run_tally_insert.v1.sql")
    _execute(f"REVOKE ALL ON FUNCTION {INSERT_FN} FROM PUBLIC")
    _execute(f"COMMENT ON FUNCTION {INSERT_FN} IS '{INSERT_FN_COMMENT}'")
    _execute(
        f"CREATE TRIGGER {INSERT_TRIGGER} AFTER INSERT ON {LEDGER} FOR EACH ROW"
        f" EXECUTE FUNCTION {INSERT_FN}"
    )
    _execute(f"DROP TABLE {WATERMARK}")
    # The v1 rebuild: tally = the whole ledger, no deltas, as 0008 keeps it.
    _execute(
        f"""
DO $recount$
BEGIN
    RAISE NOTICE 'dot_iu_command_run_tally recounted from the ledger: %', {REBUILD};
END
$recount$"""
    )
