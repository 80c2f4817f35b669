"""The run tally behind the registry and health views (0008_run_tally, issue 5).

The views must return exactly what a plain aggregate over the ledger returns, whatever mix of
concurrent writes, rollbacks, direct inserts, maintenance deletes and folds produced the ledger;
a rolled-back write leaves no trace; the rebuild function recounts from the ledger. The plain
aggregates below are written here, independently of the views' v1 text.
"""

from __future__ import annotations

import json
import os
import random
import threading

import pgtap
import psycopg
import pytest

DIGEST = "0123456789abcdef0123456789abcdef"
TALLY = "dot_iu_command_run_tally"
DELTA = "dot_iu_command_run_tally_delta"
FOLD = "SELECT fn_dot_iu_command_run_tally_fold()"
TALLY_FUNCTIONS = (
    "fn_dot_iu_command_run_tally_insert",
    "fn_dot_iu_command_run_tally_delete",
    "fn_dot_iu_command_run_tally_truncate",
)
LOGGER_ARGS = ["text", "text", "text", "text", "text", "jsonb", "jsonb"]
# (mode, status) pairs the ledger accepts
PAIRS = [("plan", "planned"), ("apply", "applied"), ("verify", "verified")] + [
    (mode, status) for mode in ("plan", "apply", "verify") for status in ("refused", "failed")
]
GATE_KEYS = (
    "iu_core.composer_enabled", "iu_core.structure_ops_enabled", "iu_core.delivery_enabled",
    "iu_core.three_axis_auto_refresh_enabled", "queue.job_substrate.enabled",
    "queue.dlq.replay_enabled", "iu_enact.allow_no_review_decision",
    "iu_core.vector_sync_enabled", "iu_core.operator_runtime_enabled",
)

REGISTRY = """
SELECT command_name, total_runs, applied_runs, refused_runs, failed_runs, last_run_at, last_status
  FROM v_dot_iu_command_registry"""
PLAIN_REGISTRY = """
SELECT c.command_name,
       count(r.run_id),
       count(r.run_id) FILTER (WHERE r.run_status = 'applied'),
       count(r.run_id) FILTER (WHERE r.run_status = 'refused'),
       count(r.run_id) FILTER (WHERE r.run_status = 'failed'),
       max(r.created_at),
       (SELECT l.run_status FROM dot_iu_command_run AS l WHERE l.command_name = c.command_name
         ORDER BY l.created_at DESC, l.run_id DESC LIMIT 1)
  FROM dot_iu_command_catalog AS c
  LEFT JOIN dot_iu_command_run AS r ON r.command_name = c.command_name
 GROUP BY c.command_name"""
HEALTH = """
SELECT total_runs, apply_runs, applied_runs, refused_runs, failed_runs, distinct_commands,
       catalog_size, last_run_at
  FROM v_dot_iu_command_run_health"""
PLAIN_HEALTH = """
SELECT count(*),
       count(*) FILTER (WHERE run_mode = 'apply'),
       count(*) FILTER (WHERE run_status = 'applied'),
       count(*) FILTER (WHERE run_status = 'refused'),
       count(*) FILTER (WHERE run_status = 'failed'),
       count(DISTINCT command_name),
       (SELECT count(*) FROM dot_iu_command_catalog),
       max(created_at)
  FROM dot_iu_command_run"""
TALLY_SUMS = f"""
SELECT command_name, run_mode, run_status, sum(runs)::bigint AS runs
  FROM (SELECT command_name, run_mode, run_status, runs FROM {TALLY}
        UNION ALL
        SELECT command_name, run_mode, run_status, runs FROM {DELTA}) AS counted
 GROUP BY 1, 2, 3 HAVING sum(runs) <> 0"""
PLAIN_SUMS = """
SELECT command_name, run_mode, run_status, count(*)
  FROM dot_iu_command_run GROUP BY 1, 2, 3"""


def log(conn, command="dot_iu_add_piece", mode="apply", status="applied"):
    return conn.execute("SELECT fn_dot_iu_command_log(%s, %s, %s, 'ops', %s)",
                        (command, mode, status, DIGEST)).fetchone()[0]


def insert_directly(conn, command="dot_iu_add_piece", mode="plan", status="planned"):
    conn.execute(
        "INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating, actor,"
        " params_digest) VALUES (%s, %s, %s, true, 'direct', %s)",
        (command, mode, status, DIGEST))


def assert_exact(conn, what=""):
    """The views and the tally agree with plain aggregates over the ledger."""
    suffix = f" ({what})" if what else ""
    pgtap.set_eq(conn, REGISTRY, conn.execute(PLAIN_REGISTRY).fetchall(),
                 description="v_dot_iu_command_registry equals a plain aggregate" + suffix)
    pgtap.results_eq(conn, HEALTH, conn.execute(PLAIN_HEALTH).fetchall(),
                     description="v_dot_iu_command_run_health equals a plain aggregate" + suffix)
    pgtap.set_eq(conn, TALLY_SUMS, conn.execute(PLAIN_SUMS).fetchall(),
                 description="the tally plus its deltas equals the ledger's counts" + suffix)


def numbers(conn):
    """Everything the views and the tally say, in a comparable form."""
    return (conn.execute(REGISTRY + " ORDER BY command_name").fetchall(),
            conn.execute(HEALTH).fetchall(),
            conn.execute(TALLY_SUMS + " ORDER BY 1, 2, 3").fetchall())


def commands(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT command_name FROM dot_iu_command_catalog ORDER BY 1").fetchall()]


# -- shape -------------------------------------------------------------------------------------

@pytest.mark.parametrize("table", [TALLY, DELTA])
def test_tally_tables_have_their_columns_comment_and_no_public_privileges(db, table):
    pgtap.has_table(db, table)
    for column, type_ in (("command_name", "text"), ("run_mode", "text"),
                          ("run_status", "text"), ("runs", "bigint")):
        pgtap.col_type_is(db, table, column, type_)
        pgtap.col_not_null(db, table, column)
    pgtap.has_comment(db, "table", table)
    pgtap.table_privs_are(db, table, "public", [])


def test_the_tally_has_one_row_per_key(db):
    pgtap.col_is_pk(db, TALLY, ["command_name", "run_mode", "run_status"])
    pgtap.has_index(db, TALLY, "pk_dot_iu_command_run_tally",
                    ["command_name", "run_mode", "run_status"])


def test_the_deltas_carry_no_index_and_ask_autovacuum_to_reclaim_them_early(db):
    pgtap.is_empty(db, "SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass",
                   params=(DELTA,))
    pgtap.results_eq(db, "SELECT reloptions FROM pg_class WHERE oid = %s::regclass",
                     [(["autovacuum_vacuum_threshold=1000",
                        "autovacuum_vacuum_scale_factor=0"],)], params=(DELTA,))


def test_tally_triggers_sit_on_the_ledger_and_call_their_functions(db):
    for function in TALLY_FUNCTIONS:
        trigger = function.replace("fn_", "tg_", 1)
        pgtap.has_trigger(db, "dot_iu_command_run", trigger)
        pgtap.trigger_is(db, "dot_iu_command_run", trigger, f"public.{function}")
    pgtap.results_eq(
        db,
        "SELECT tgname, pg_get_triggerdef(oid) ~ 'AFTER INSERT .* FOR EACH ROW',"
        " pg_get_triggerdef(oid) ~ 'AFTER DELETE .* REFERENCING OLD TABLE AS old_runs"
        " FOR EACH STATEMENT', pg_get_triggerdef(oid) ~ 'AFTER TRUNCATE .* FOR EACH STATEMENT'"
        " FROM pg_trigger WHERE tgrelid = 'dot_iu_command_run'::regclass"
        " AND tgname LIKE 'tg_dot_iu_command_run_tally_%' ORDER BY tgname",
        [("tg_dot_iu_command_run_tally_delete", False, True, False),
         ("tg_dot_iu_command_run_tally_insert", True, False, False),
         ("tg_dot_iu_command_run_tally_truncate", False, False, True)],
    )


@pytest.mark.parametrize("function,args,returns", [
    *[(name, [], "trigger") for name in TALLY_FUNCTIONS],
    ("fn_dot_iu_command_run_tally_fold", [], "bigint"),
    ("fn_dot_iu_command_run_tally_rebuild", [], "jsonb"),
    ("fn_dot_iu_command_log", LOGGER_ARGS, "bigint"),
])
def test_tally_functions_are_definer_pinned_revoked_and_commented(db, function, args, returns):
    pgtap.has_function(db, function, args)
    pgtap.function_returns(db, function, args, returns)
    pgtap.volatility_is(db, function, args, "volatile")
    pgtap.is_definer(db, function, args)
    pgtap.search_path_pinned(db, function, args)
    pgtap.execute_revoked_from_public(db, function, args)
    pgtap.has_comment(db, "function", function, args)


def test_views_keep_the_v1_columns_in_order_with_their_types(db):
    columns = """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
         WHERE a.attrelid = %s::regclass AND a.attnum > 0 ORDER BY a.attnum"""
    pgtap.results_eq(db, columns, [
        ("command_name", "text"), ("category", "text"), ("mutating", "boolean"),
        ("reversible", "boolean"), ("target_function", "text"), ("inverse_command", "text"),
        ("description", "text"), ("target_resolves", "boolean"), ("total_runs", "bigint"),
        ("applied_runs", "bigint"), ("refused_runs", "bigint"), ("failed_runs", "bigint"),
        ("last_run_at", "timestamp with time zone"), ("last_status", "text"),
    ], params=("v_dot_iu_command_registry",))
    pgtap.results_eq(db, columns, [
        ("total_runs", "bigint"), ("apply_runs", "bigint"), ("applied_runs", "bigint"),
        ("refused_runs", "bigint"), ("failed_runs", "bigint"), ("distinct_commands", "bigint"),
        ("catalog_size", "bigint"), ("last_run_at", "timestamp with time zone"),
    ], params=("v_dot_iu_command_run_health",))


def test_views_read_the_ledger_only_through_its_indexes(db):
    """O(commands): no plan of either view scans the whole ledger."""
    names = commands(db)
    db.execute(
        "ALTER TABLE dot_iu_command_run DISABLE TRIGGER tg_dot_iu_command_run_tally_insert")
    db.execute(
        "INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating, actor,"
        " params_digest) SELECT (%s::text[])[1 + i %% %s], 'apply', 'applied', true, 'bulk', %s"
        " FROM generate_series(1, 20000) AS i", (names, len(names), DIGEST))
    db.execute(
        "ALTER TABLE dot_iu_command_run ENABLE TRIGGER tg_dot_iu_command_run_tally_insert")
    db.execute("SELECT fn_dot_iu_command_run_tally_rebuild()")
    db.execute("ANALYZE dot_iu_command_run")
    for view in ("v_dot_iu_command_registry", "v_dot_iu_command_run_health"):
        plan = db.execute(f"EXPLAIN (FORMAT JSON) SELECT * FROM {view}").fetchone()[0]
        scans = _scans_of(plan[0]["Plan"])
        ledger = [kind for kind, relation in scans if relation == "dot_iu_command_run"]
        assert ledger and "Seq Scan" not in ledger, f"{view} scans the ledger: {scans}"
    assert_exact(db, "after a bulk load and a rebuild")


def _scans_of(node) -> list[tuple[str, str]]:
    found = [(node["Node Type"], node["Relation Name"])] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += _scans_of(child)
    return found


# -- exactness ---------------------------------------------------------------------------------

def test_views_equal_a_plain_aggregate_on_an_empty_and_a_scripted_ledger(db):
    assert_exact(db, "empty ledger")
    for command in commands(db)[:5]:
        for mode, status in PAIRS:
            log(db, command, mode, status)
    insert_directly(db)
    assert_exact(db, "scripted ledger")


def test_a_rolled_back_logger_call_leaves_no_trace_in_the_numbers(db):
    log(db)
    before = numbers(db)
    db.autocommit = False
    try:
        for mode, status in PAIRS:
            log(db, "dot_iu_healthcheck", mode, status)
        insert_directly(db, "dot_iu_healthcheck")
        inside = db.execute(HEALTH).fetchone()[0]
        assert inside == before[1][0][0] + len(PAIRS) + 1, "the writer sees its own runs"
        db.rollback()
    finally:
        db.autocommit = True
    assert numbers(db) == before
    assert_exact(db, "after the rollback")


def test_a_refused_logger_call_inside_a_savepoint_leaves_no_trace(db):
    log(db)
    before = numbers(db)
    with db.transaction():
        log(db, "dot_iu_healthcheck", "plan", "planned")
        pgtap.throws_ok(db, "SELECT fn_dot_iu_command_log('dot_iu_not_catalogued', 'plan',"
                        f" 'planned', 'ops', '{DIGEST}')", "23503")
        pgtap.throws_ok(db, "SELECT fn_dot_iu_command_log('dot_iu_add_piece', 'plan',"
                        f" 'applied', 'ops', '{DIGEST}')", "23514")
    after = numbers(db)
    assert after[1][0][0] == before[1][0][0] + 1
    assert_exact(db, "after refused calls")


def test_maintenance_delete_and_truncate_keep_the_numbers_exact(db):
    for command in commands(db)[:4]:
        for mode, status in PAIRS:
            log(db, command, mode, status)
    insert_directly(db)
    with db.transaction():
        db.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")
        db.execute("DELETE FROM dot_iu_command_run WHERE run_id % 3 = 0")
        db.execute("DELETE FROM dot_iu_command_run WHERE run_id = (SELECT max(run_id)"
                   " FROM dot_iu_command_run)")  # the latest run: last_run_at moves back
    assert_exact(db, "after maintenance deletes")
    pgtap.throws_ok(db, "DELETE FROM dot_iu_command_run", "55000")
    assert_exact(db, "after a refused delete")
    with db.transaction():
        db.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")
        db.execute("TRUNCATE dot_iu_command_run, iu_gate_transition")
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")
    assert_exact(db, "after truncate")
    log(db)
    assert_exact(db, "a run after truncate")


def test_uncatalogued_runs_count_in_health_but_not_in_the_registry(db):
    db.execute("DELETE FROM dot_iu_command_catalog")
    log(db, "dot_iu_anything", "plan", "planned")
    pgtap.results_eq(db, "SELECT mutating FROM dot_iu_command_run", [(True,)])
    assert_exact(db, "empty catalog")


def test_every_write_appends_a_delta_and_a_fold_moves_them_into_the_tally(db):
    for mode, status in PAIRS:
        log(db, "dot_iu_healthcheck", mode, status)
    log(db)
    insert_directly(db)
    pgtap.results_eq(db, f"SELECT count(*), sum(runs) FROM {DELTA}", [(11, 11)])
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")
    pgtap.results_eq(db, FOLD, [(11,)])
    pgtap.is_empty(db, f"SELECT * FROM {DELTA}")
    pgtap.results_eq(db, f"SELECT sum(runs) FROM {TALLY}", [(11,)])
    assert_exact(db, "after a fold")
    with db.transaction():
        db.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")
        db.execute("DELETE FROM dot_iu_command_run WHERE command_name = 'dot_iu_add_piece'")
    pgtap.results_eq(db, f"SELECT command_name, run_mode, run_status, runs FROM {DELTA}",
                     [("dot_iu_add_piece", "apply", "applied", -1),
                      ("dot_iu_add_piece", "plan", "planned", -1)])
    assert_exact(db, "a delete's negative deltas")
    db.execute(FOLD)
    pgtap.results_eq(db, f"SELECT runs FROM {TALLY} WHERE command_name = 'dot_iu_add_piece'"
                     " ORDER BY run_mode", [(0,), (0,)])
    assert_exact(db, "folded down to zero")


def test_the_1024th_run_id_folds_inside_the_writing_transaction(db):
    db.execute("SELECT setval(pg_get_serial_sequence('dot_iu_command_run', 'run_id'), 1020)")
    for _ in range(3):
        log(db)  # run_ids 1021..1023: deltas only
    pgtap.results_eq(db, f"SELECT count(*) FROM {DELTA}", [(3,)])
    log(db)  # run_id 1024: folds
    pgtap.is_empty(db, f"SELECT * FROM {DELTA}")
    pgtap.results_eq(db, f"SELECT runs FROM {TALLY}", [(4,)])
    assert_exact(db, "folded by the 1024th write")


def test_a_fold_that_rolls_back_moves_nothing(db):
    log(db)
    log(db, "dot_iu_healthcheck", "plan", "planned")
    before = numbers(db)
    with db.transaction() as tx:
        pgtap.results_eq(db, FOLD, [(2,)])
        pgtap.is_empty(db, f"SELECT * FROM {DELTA}")
        raise psycopg.Rollback(tx)
    pgtap.results_eq(db, f"SELECT count(*) FROM {DELTA}", [(2,)])
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")
    assert numbers(db) == before


def test_one_fold_at_a_time_and_nobody_waits_for_it(pg, db, db_name):
    log(db)
    with pg.connect(db_name, autocommit=False) as folder:
        assert folder.execute(FOLD).fetchone()[0] == 1  # holds the fold lock until commit
        log(db)
        db.execute("SET lock_timeout = '100ms'")
        pgtap.results_eq(db, FOLD, [(0,)], description="a second fold skips, at once")
        log(db)  # writers never wait, not even on a fold in flight
        db.execute("RESET lock_timeout")
        folder.commit()
    pgtap.results_eq(db, FOLD, [(2,)])
    assert_exact(db)


def test_a_transaction_folds_once_and_only_under_read_committed(db):
    log(db)
    with db.transaction():
        pgtap.results_eq(db, FOLD, [(1,)])
        log(db)
        pgtap.results_eq(db, FOLD, [(0,)], description="a second fold in one transaction")
    pgtap.results_eq(db, FOLD, [(1,)], description="the next transaction folds again")
    log(db)
    with db.transaction():
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        pgtap.results_eq(db, FOLD, [(0,)], description="no fold under REPEATABLE READ")
    assert_exact(db)


def test_a_bulk_insert_folds_once_and_stays_exact(db):
    names = commands(db)
    db.execute(
        "INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating, actor,"
        " params_digest) SELECT (%s::text[])[1 + i %% %s], 'plan', 'planned', true, 'bulk', %s"
        " FROM generate_series(1, 5000) AS i", (names, len(names), DIGEST))
    # The fold at run_id 1024 moved the 1024 deltas before it; later ones wait for the next.
    pgtap.results_eq(db, f"SELECT sum(runs) FROM {TALLY}", [(1024,)])
    pgtap.results_eq(db, f"SELECT count(*) FROM {DELTA}", [(5000 - 1024,)])
    assert_exact(db, "after a bulk insert")
    pgtap.results_eq(db, FOLD, [(5000 - 1024,)])
    assert_exact(db, "after the next fold")


def test_randomized_concurrent_appends_keep_the_views_equal_to_a_plain_aggregate(
        pg, db, db_name):
    seed = int(os.environ.get("TALLY_SEED", random.randrange(1 << 30)))
    names = commands(db)
    outcomes: dict[str, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def count(what: str) -> None:
        with lock:
            outcomes[what] = outcomes.get(what, 0) + 1

    def worker(number: int) -> None:
        rng = random.Random(seed + number)
        try:
            with pg.connect(db_name) as conn:
                start.wait()
                for _ in range(80):
                    try:
                        _random_step(conn, rng, names, count)
                    except psycopg.errors.DeadlockDetected:
                        count("deadlock (rolled back)")
        except BaseException as error:  # noqa: BLE001 - reported below, with the seed
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, f"TALLY_SEED={seed}: {errors!r}"
    assert all(outcomes.get(what, 0) > 0 for what in ("rolled back", "maintenance delete",
                                                      "fold")), (
        f"TALLY_SEED={seed}: the mix must include rollbacks, deletes and folds: {outcomes}")
    assert_exact(db, f"TALLY_SEED={seed}, {outcomes}")
    rebuilt = db.execute("SELECT fn_dot_iu_command_run_tally_rebuild()").fetchone()[0]
    assert rebuilt["runs"] == rebuilt["runs_before"], f"TALLY_SEED={seed}: the tally had drifted"
    assert_exact(db, f"TALLY_SEED={seed}, rebuilt")


def _random_step(conn, rng: random.Random, names: list[str], count) -> None:
    """One of: a logged run, a fold, a committed or rolled-back transaction of several writes
    (logger and direct, maybe a fold, maybe a refused call in a savepoint), or a maintenance
    delete."""
    def any_run():
        mode, status = rng.choice(PAIRS)
        return rng.choice(names), mode, status

    roll = rng.random()
    if roll < 0.40:
        log(conn, *any_run())
        count("logged")
    elif roll < 0.45:
        conn.execute("SELECT fn_dot_iu_command_run_tally_fold()")
        count("fold")
    elif roll < 0.85:
        with conn.transaction() as tx:
            for _ in range(rng.randint(1, 4)):
                if rng.random() < 0.2:
                    insert_directly(conn, *any_run())
                else:
                    log(conn, *any_run())
            if rng.random() < 0.2:
                conn.execute("SELECT fn_dot_iu_command_run_tally_fold()")
            if rng.random() < 0.3:
                with pytest.raises(psycopg.errors.ForeignKeyViolation):
                    with conn.transaction():
                        log(conn, "dot_iu_not_catalogued", "plan", "planned")
            if rng.random() < 0.4:
                count("rolled back")
                raise psycopg.Rollback(tx)
            count("committed")
    else:
        with conn.transaction():
            conn.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")
            conn.execute(
                "DELETE FROM dot_iu_command_run WHERE run_id IN (SELECT run_id FROM"
                " dot_iu_command_run WHERE run_id %% 7 = %s ORDER BY run_id DESC LIMIT 3)",
                (rng.randrange(7),))
        count("maintenance delete")


# -- rebuild -----------------------------------------------------------------------------------

def test_rebuild_recounts_a_drifted_tally_and_reports_the_drift(db):
    for command in commands(db)[:3]:
        for mode, status in PAIRS:
            log(db, command, mode, status)
    db.execute(FOLD)
    log(db)  # one delta left pending
    runs = db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0]
    db.execute(f"UPDATE {TALLY} SET runs = runs + 5")
    db.execute(f"INSERT INTO {TALLY} VALUES ('dot_iu_ghost', 'plan', 'planned', 11)")
    db.execute(f"INSERT INTO {DELTA} VALUES ('dot_iu_ghost', 'plan', 'planned', 2)")
    drifted = db.execute(f"SELECT sum(runs) FROM ({TALLY_SUMS}) AS s").fetchone()[0]
    report = db.execute("SELECT fn_dot_iu_command_run_tally_rebuild()").fetchone()[0]
    groups = db.execute(f"SELECT count(*) FROM ({PLAIN_SUMS}) AS g").fetchone()[0]
    assert report == {"runs": runs, "commands": 3, "tally_rows": groups,
                      "runs_before": drifted, "deltas_before": 2}
    pgtap.is_empty(db, f"SELECT * FROM {DELTA}")
    assert_exact(db, "after the rebuild")


def test_rebuild_of_an_empty_ledger_empties_the_tally(db):
    db.execute(f"INSERT INTO {TALLY} VALUES ('dot_iu_ghost', 'plan', 'planned', 2)")
    report = db.execute("SELECT fn_dot_iu_command_run_tally_rebuild()").fetchone()[0]
    assert report == {"runs": 0, "commands": 0, "tally_rows": 0, "runs_before": 2,
                      "deltas_before": 0}
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")


def test_rebuild_waits_for_in_flight_writers(pg, db, db_name):
    with pg.connect(db_name, autocommit=False) as writer:
        log(writer)  # uncommitted: the rebuild must not count around it
        db.execute("SET lock_timeout = '200ms'")
        pgtap.throws_ok(db, "SELECT fn_dot_iu_command_run_tally_rebuild()", "55P03")
        db.execute("RESET lock_timeout")
        writer.commit()
    report = db.execute("SELECT fn_dot_iu_command_run_tally_rebuild()").fetchone()[0]
    assert report["runs"] == report["runs_before"] == 1
    assert_exact(db)


# -- the logger, v2 ----------------------------------------------------------------------------

def test_logger_v2_snapshot_equals_the_v1_ordered_aggregate(db):
    db.execute("UPDATE dot_config SET value = 'maybe' WHERE key = 'iu_core.delivery_enabled'")
    log(db)
    have = db.execute("SELECT gate_snapshot::text FROM dot_iu_command_run").fetchone()[0]
    want = db.execute(
        "SELECT coalesce(jsonb_object_agg(g.key, g.value ORDER BY g.key), '{}')::text"
        " FROM dot_config AS g WHERE g.key = ANY(%s)", (list(GATE_KEYS),)).fetchone()[0]
    assert have == want
    assert json.loads(have)["iu_core.delivery_enabled"] == "maybe"


def test_logger_v2_keeps_a_given_snapshot_and_evidence(db):
    db.execute("SELECT fn_dot_iu_command_log('dot_iu_add_piece', 'apply', 'refused', 'ops', %s,"
               " '{\"sqlstate\": \"42501\"}', '{\"x\": \"y\"}')", (DIGEST,))
    db.execute("SELECT fn_dot_iu_command_log('dot_iu_add_piece', 'apply', 'refused', 'ops', %s,"
               " NULL, '{}')", (DIGEST,))
    pgtap.results_eq(db, "SELECT evidence, gate_snapshot, mutating FROM dot_iu_command_run"
                     " ORDER BY run_id",
                     [({"sqlstate": "42501"}, {"x": "y"}, True), ({}, {}, True)])


def test_logger_v2_returns_the_run_id_it_wrote(db):
    first, second = log(db), log(db, "dot_iu_healthcheck", "verify", "verified")
    pgtap.results_eq(db, "SELECT run_id, command_name, mutating FROM dot_iu_command_run"
                     " ORDER BY run_id",
                     [(first, "dot_iu_add_piece", True), (second, "dot_iu_healthcheck", False)])


# -- the revision ------------------------------------------------------------------------------

def test_upgrade_backfills_an_existing_ledger_and_downgrade_restores_v1(
        pg, empty_db, empty_db_url, alembic):
    alembic(empty_db_url, "upgrade", "0007_runtime_reader_v2")
    for command in ("dot_iu_add_piece", "dot_iu_healthcheck"):
        for mode, status in PAIRS:
            log(empty_db, command, mode, status)
    v1_registry = empty_db.execute(REGISTRY + " ORDER BY command_name").fetchall()
    v1_health = empty_db.execute(HEALTH).fetchall()
    result = alembic(empty_db_url, "upgrade", "0008_run_tally")
    assert ('dot_iu_command_run_tally backfilled from the ledger: {"runs": 18, "commands": 2,'
            ' "tally_rows": 18, "runs_before": 0, "deltas_before": 0}') in result.stderr
    assert empty_db.execute(REGISTRY + " ORDER BY command_name").fetchall() == v1_registry
    assert empty_db.execute(HEALTH).fetchall() == v1_health
    assert_exact(empty_db, "backfilled")
    log(empty_db)
    alembic(empty_db_url, "downgrade", "0007_runtime_reader_v2")
    pgtap.hasnt_table(empty_db, TALLY)
    pgtap.hasnt_table(empty_db, DELTA)
    pgtap.hasnt_function(empty_db, "fn_dot_iu_command_run_tally_rebuild")
    pgtap.hasnt_function(empty_db, "fn_dot_iu_command_run_tally_fold")
    pgtap.results_eq(empty_db, HEALTH, empty_db.execute(PLAIN_HEALTH).fetchall())
