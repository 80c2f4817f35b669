"""The run tally behind the registry and health views, as head keeps it (0009_tally_watermark).

dot_iu_command_run_tally counts every ledger row at or below the watermark; the views add the
rows past it. The views must return exactly what a plain aggregate over the ledger returns,
whatever mix of concurrent writes, rollbacks, direct inserts, maintenance deletes and folds
produced the ledger; a rolled-back write leaves no trace; the watermark never passes a write
that is still in flight; the rebuild function recounts from the ledger. The plain aggregates
below are written here, independently of the views' text.
"""

from __future__ import annotations

import os
import random
import threading

import pgtap
import psycopg
import pytest
from gate_helpers import MAINTENANCE, write_run

DIGEST = "0123456789abcdef0123456789abcdef"
TALLY = "dot_iu_command_run_tally"
WATERMARK = "dot_iu_command_run_tally_watermark"
DELTA = "dot_iu_command_run_tally_delta"
FOLD = "SELECT fn_dot_iu_command_run_tally_fold()"
REBUILD = "SELECT fn_dot_iu_command_run_tally_rebuild()"
MARK = f"SELECT folded_through, candidate_through, candidate_writers FROM {WATERMARK}"
TRIGGER_FUNCTIONS = ("fn_dot_iu_command_run_tally_delete", "fn_dot_iu_command_run_tally_truncate")
LOGGER_ARGS = ["text", "text", "text", "text", "text", "jsonb", "jsonb"]
# (mode, status) pairs the ledger accepts
PAIRS = [("plan", "planned"), ("apply", "applied"), ("verify", "verified")] + [
    (mode, status) for mode in ("plan", "apply", "verify") for status in ("refused", "failed")
]

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
# What the tally alone claims: it must equal the ledger's rows at or below the watermark.
TALLY_SUMS = f"SELECT command_name, run_mode, run_status, runs FROM {TALLY} WHERE runs <> 0"
PLAIN_SUMS_BELOW = f"""
SELECT command_name, run_mode, run_status, count(*)
  FROM dot_iu_command_run
 WHERE run_id <= (SELECT folded_through FROM {WATERMARK})
 GROUP BY 1, 2, 3"""


def log(conn, command="dot_iu_add_piece", mode="apply", status="applied"):
    return write_run(conn, command, mode, status, digest=DIGEST)


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
    pgtap.set_eq(conn, TALLY_SUMS, conn.execute(PLAIN_SUMS_BELOW).fetchall(),
                 description="the tally equals the ledger at or below the watermark" + suffix)


def numbers(conn):
    """Everything the views and the tally say, in a comparable form."""
    return (conn.execute(REGISTRY + " ORDER BY command_name").fetchall(),
            conn.execute(HEALTH).fetchall(),
            conn.execute(TALLY_SUMS + " ORDER BY 1, 2, 3").fetchall(),
            conn.execute(MARK).fetchall())


def commands(conn) -> list[str]:
    """The catalogued commands the logger writes every kind of row of: not the package's own
    (the gate protocol's, the lease break's), whose applied rows only their functions write."""
    return [r[0] for r in conn.execute(
        "SELECT command_name FROM dot_iu_command_catalog"
        " WHERE command_name !~ '^dot_iu_(gate|runtime)_' ORDER BY 1").fetchall()]


def fold_everything(conn) -> int:
    """Two folds with no other writer: the first records a candidate, the second promotes it."""
    return conn.execute(FOLD).fetchone()[0] + conn.execute(FOLD).fetchone()[0]


def folded_through(conn) -> int:
    return conn.execute(f"SELECT folded_through FROM {WATERMARK}").fetchone()[0]


# -- shape -------------------------------------------------------------------------------------

def test_the_tally_table_has_its_columns_key_comment_and_no_public_privileges(db):
    pgtap.has_table(db, TALLY)
    for column, type_ in (("command_name", "text"), ("run_mode", "text"),
                          ("run_status", "text"), ("runs", "bigint")):
        pgtap.col_type_is(db, TALLY, column, type_)
        pgtap.col_not_null(db, TALLY, column)
    pgtap.col_is_pk(db, TALLY, ["command_name", "run_mode", "run_status"])
    pgtap.has_comment(db, "table", TALLY)
    pgtap.table_privs_are(db, TALLY, "public", [])


def test_the_watermark_is_one_row_with_its_checks_comment_and_no_public_privileges(db):
    pgtap.has_table(db, WATERMARK)
    for column, type_, not_null in (("singleton", "boolean", True),
                                    ("folded_through", "bigint", True),
                                    ("candidate_through", "bigint", False),
                                    ("candidate_writers", "text[]", False),
                                    ("folded_at", "timestamp with time zone", True)):
        pgtap.col_type_is(db, WATERMARK, column, type_)
        (pgtap.col_not_null if not_null else pgtap.col_is_null)(db, WATERMARK, column)
    pgtap.col_is_pk(db, WATERMARK, ["singleton"])
    pgtap.has_comment(db, "table", WATERMARK)
    pgtap.table_privs_are(db, WATERMARK, "public", [])
    pgtap.results_eq(db, f"SELECT count(*) FROM {WATERMARK}", [(1,)])
    pgtap.throws_ok(db, f"INSERT INTO {WATERMARK} (singleton, folded_through) VALUES (false, 0)",
                    "23514")
    pgtap.throws_ok(db, f"INSERT INTO {WATERMARK} (folded_through) VALUES (0)", "23505")
    pgtap.throws_ok(db, f"UPDATE {WATERMARK} SET folded_through = -1", "23514")


def test_the_deltas_and_their_insert_trigger_are_gone(db):
    pgtap.hasnt_table(db, DELTA)
    pgtap.hasnt_function(db, "fn_dot_iu_command_run_tally_insert")
    pgtap.is_empty(db, "SELECT tgname FROM pg_trigger"
                       " WHERE tgrelid = 'dot_iu_command_run'::regclass AND NOT tgisinternal"
                       " AND pg_get_triggerdef(oid) ~ 'INSERT'")


def test_tally_triggers_sit_on_the_ledger_and_call_their_functions(db):
    for function in TRIGGER_FUNCTIONS:
        trigger = function.replace("fn_", "tg_", 1)
        pgtap.has_trigger(db, "dot_iu_command_run", trigger)
        pgtap.trigger_is(db, "dot_iu_command_run", trigger, f"public.{function}")
    pgtap.results_eq(
        db,
        "SELECT tgname, pg_get_triggerdef(oid) ~ 'AFTER DELETE .* REFERENCING OLD TABLE AS"
        " old_runs FOR EACH STATEMENT', pg_get_triggerdef(oid) ~ 'AFTER TRUNCATE .* FOR EACH"
        " STATEMENT' FROM pg_trigger WHERE tgrelid = 'dot_iu_command_run'::regclass"
        " AND tgname LIKE 'tg_dot_iu_command_run_tally_%' ORDER BY tgname",
        [("tg_dot_iu_command_run_tally_delete", True, False),
         ("tg_dot_iu_command_run_tally_truncate", False, True)],
    )


@pytest.mark.parametrize("function,args,returns", [
    *[(name, [], "trigger") for name in TRIGGER_FUNCTIONS],
    ("fn_dot_iu_command_run_tally_fold", [], "bigint"),
    ("fn_dot_iu_command_run_tally_rebuild", [], "jsonb"),
    ("fn_dot_iu_gate_snapshot_refresh", [], "jsonb"),
    ("fn_dot_iu_gate_snapshot_sync", [], "trigger"),
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


def bulk_insert(conn, rows: int, status_mode=("apply", "applied")) -> None:
    names = commands(conn)
    conn.execute(
        "INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating, actor,"
        " params_digest) SELECT (%s::text[])[1 + i %% %s], %s, %s, true, 'bulk', %s"
        " FROM generate_series(1, %s) AS i",
        (names, len(names), status_mode[0], status_mode[1], DIGEST, rows))


def test_views_read_the_ledger_only_through_its_indexes(db):
    """O(commands): no plan of either view scans the whole ledger; the rows past the
    watermark are a primary-key range."""
    bulk_insert(db, 20000)
    db.execute(REBUILD)
    bulk_insert(db, 300)  # past the watermark
    db.execute("ANALYZE dot_iu_command_run")
    for view in ("v_dot_iu_command_registry", "v_dot_iu_command_run_health"):
        plan = db.execute(f"EXPLAIN (FORMAT JSON) SELECT * FROM {view}").fetchone()[0]
        scans = _scans_of(plan[0]["Plan"])
        ledger = [kind for kind, relation in scans if relation == "dot_iu_command_run"]
        assert ledger and "Seq Scan" not in ledger, f"{view} scans the ledger: {scans}"
        # The range past the watermark is planned as a slice, not a third of the ledger: no
        # ledger-sized hash table, no parallel workers for the few rows it reads.
        tail = [rows for kind, index, rows in _index_scans_of(plan[0]["Plan"])
                if kind == "Index Scan" and index == "pk_dot_iu_command_run"]
        assert tail and max(tail) < 0.05 * 20300, f"{view} plans the tail as {tail} rows"
    assert_exact(db, "after a bulk load, a rebuild and 300 rows past the watermark")


def _index_scans_of(node) -> list[tuple[str, str, float]]:
    found = ([(node["Node Type"], node["Index Name"], node["Plan Rows"])]
             if "Index Name" in node else [])
    for child in node.get("Plans", []):
        found += _index_scans_of(child)
    return found


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
    assert_exact(db, "scripted ledger, nothing folded")
    assert fold_everything(db) == 5 * len(PAIRS) + 1
    assert_exact(db, "scripted ledger, all folded")
    log(db)
    assert_exact(db, "one run past the watermark")


def test_a_rolled_back_logger_call_leaves_no_trace_in_the_numbers(db):
    log(db)
    fold_everything(db)
    log(db)
    before = numbers(db)
    db.autocommit = False
    try:
        for mode, status in PAIRS:
            log(db, "dot_iu_healthcheck", mode, status)
        insert_directly(db, "dot_iu_healthcheck")
        db.execute(FOLD)
        db.execute(FOLD)  # folds this transaction's own runs: they roll back with it
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


def test_maintenance_deletes_below_and_past_the_watermark_keep_the_numbers_exact(db):
    for command in commands(db)[:4]:
        for mode, status in PAIRS:
            log(db, command, mode, status)
    insert_directly(db)
    fold_everything(db)
    mark = folded_through(db)
    for mode, status in PAIRS:
        log(db, "dot_iu_healthcheck", mode, status)  # past the watermark
    with db.transaction():
        db.execute(MAINTENANCE)
        db.execute("DELETE FROM dot_iu_command_run WHERE run_id % 3 = 0")
        db.execute("DELETE FROM dot_iu_command_run WHERE run_id = (SELECT max(run_id)"
                   " FROM dot_iu_command_run)")  # the latest run: last_run_at moves back
    assert folded_through(db) == mark
    assert_exact(db, "after maintenance deletes on both sides of the watermark")
    pgtap.is_empty(db, f"SELECT * FROM {TALLY} WHERE runs <= 0",
                   description="a key deleted down to zero leaves the tally")
    pgtap.throws_ok(db, "DELETE FROM dot_iu_command_run", "55000")
    assert_exact(db, "after a refused delete")


@pytest.mark.parametrize("restart", [False, True], ids=["continue-identity", "restart-identity"])
def test_truncate_empties_the_tally_and_moves_the_watermark_back(db, restart):
    for mode, status in PAIRS:
        log(db, "dot_iu_healthcheck", mode, status)
    fold_everything(db)
    db.execute(FOLD)  # a candidate recorded before the truncate must not survive it
    assert folded_through(db) > 0
    with db.transaction():
        db.execute(MAINTENANCE)
        db.execute("TRUNCATE dot_iu_command_run, iu_gate_transition"
                   + (" RESTART IDENTITY" if restart else ""))
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")
    pgtap.results_eq(db, MARK, [(0, None, None)])
    assert_exact(db, "after truncate")
    first = log(db)
    assert (first == 1) == restart
    assert_exact(db, "a run after truncate")
    fold_everything(db)
    assert_exact(db, "folded after truncate")


def test_uncatalogued_runs_count_in_health_but_not_in_the_registry(db):
    db.execute("DELETE FROM dot_iu_command_catalog")
    log(db, "dot_iu_anything", "plan", "planned")
    pgtap.results_eq(db, "SELECT mutating FROM dot_iu_command_run", [(True,)])
    assert_exact(db, "empty catalog")
    fold_everything(db)
    assert_exact(db, "empty catalog, folded")


# -- folds ---------------------------------------------------------------------------------------

def test_a_fold_records_a_candidate_and_the_next_one_promotes_it(db):
    for mode, status in PAIRS:
        log(db, "dot_iu_healthcheck", mode, status)
    last = log(db)
    pgtap.results_eq(db, MARK, [(0, None, None)])
    pgtap.results_eq(db, FOLD, [(0,)], description="the first fold only records a candidate")
    pgtap.results_eq(db, MARK, [(0, last, [])])
    log(db)  # after the candidate: stays past the watermark
    pgtap.results_eq(db, FOLD, [(len(PAIRS) + 1,)])
    pgtap.results_eq(db, f"SELECT folded_through, candidate_through FROM {WATERMARK}",
                     [(last, last + 1)], description="promoted, and the next candidate recorded")
    assert_exact(db, "after a promotion")
    pgtap.results_eq(db, FOLD, [(1,)])
    assert folded_through(db) == last + 1
    assert_exact(db)


def test_the_watermark_never_passes_a_write_still_in_flight(pg, db, db_name):
    """A run drawn before the candidate but committed after it: the fold must wait for it."""
    log(db)
    with pg.connect(db_name, autocommit=False) as writer:
        in_flight = log(writer, "dot_iu_healthcheck", "plan", "planned")
        after = log(db)  # committed, with a higher run_id than the writer's
        pgtap.results_eq(db, FOLD, [(0,)])
        candidate, writers = db.execute(
            f"SELECT candidate_through, candidate_writers FROM {WATERMARK}").fetchone()
        assert candidate == after and len(writers) == 1, "the writer is listed"
        for _ in range(3):
            pgtap.results_eq(db, FOLD, [(0,)], description="no promotion while it writes")
            assert folded_through(db) == 0
        assert_exact(db, "with a write in flight")
        writer.commit()
    pgtap.results_eq(db, FOLD, [(3,)], description="promoted once the writer has ended")
    assert folded_through(db) == after > in_flight
    assert_exact(db, "the late commit is counted")


def test_a_writer_that_rolls_back_releases_the_candidate_and_leaves_no_trace(pg, db, db_name):
    log(db)
    with pg.connect(db_name, autocommit=False) as writer:
        log(writer)
        db.execute(FOLD)
        pgtap.results_eq(db, FOLD, [(0,)])
        writer.rollback()
    pgtap.results_eq(db, FOLD, [(1,)])
    assert_exact(db)


def test_the_1024th_run_id_folds_inside_the_writing_transaction(db):
    db.execute("SELECT setval(pg_get_serial_sequence('dot_iu_command_run', 'run_id'), 1020)")
    for _ in range(3):
        log(db, mode="plan", status="planned")  # run_ids 1021..1023: no fold
    pgtap.results_eq(db, MARK, [(0, None, None)])
    log(db, mode="plan", status="planned")  # run_id 1024: folds (records the candidate)
    pgtap.results_eq(db, MARK, [(0, 1024, [])])
    db.execute("SELECT setval(pg_get_serial_sequence('dot_iu_command_run', 'run_id'), 2047)")
    log(db, mode="plan", status="planned")  # run_id 2048: promotes
    pgtap.results_eq(db, MARK, [(1024, 2048, [])])
    pgtap.results_eq(db, f"SELECT sum(runs) FROM {TALLY}", [(4,)])
    assert_exact(db, "folded by the logger")



def test_the_1024th_run_id_folds_also_when_written_with_the_readings_afresh(db):
    """Past the cached snapshot's validity the logger's first INSERT writes nothing and the row
    is written again with the readings afresh: the fold on its run_id still comes after it."""
    db.execute("SELECT setval(pg_get_serial_sequence('dot_iu_command_run', 'run_id'), 1023)")
    db.execute("UPDATE dot_iu_gate_snapshot SET valid_until = '-infinity'")
    run_id = log(db, mode="plan", status="planned")
    pgtap.results_eq(db, "SELECT max(run_id) FROM dot_iu_command_run", [(1024,)])
    pgtap.results_eq(db, MARK, [(0, 1024, [])])
    assert run_id == 1024

def test_a_fold_that_rolls_back_moves_nothing(db):
    log(db)
    log(db, "dot_iu_healthcheck", "plan", "planned")
    db.execute(FOLD)
    before = numbers(db)
    with db.transaction() as tx:
        pgtap.results_eq(db, FOLD, [(2,)])
        raise psycopg.Rollback(tx)
    assert numbers(db) == before
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")
    assert_exact(db)


def test_one_fold_at_a_time_and_nobody_waits_for_it(pg, db, db_name):
    log(db)
    db.execute(FOLD)
    with pg.connect(db_name, autocommit=False) as folder:
        assert folder.execute(FOLD).fetchone()[0] == 1  # holds the watermark row until commit
        log(db)
        db.execute("SET lock_timeout = '100ms'")
        pgtap.results_eq(db, FOLD, [(0,)], description="a second fold skips, at once")
        db.execute("SELECT setval(pg_get_serial_sequence('dot_iu_command_run', 'run_id'),"
                   " 2047)")
        log(db)  # run_id 2048 folds inside the logger: skips too, and the writer never waits
        db.execute("RESET lock_timeout")
        folder.commit()
    assert fold_everything(db) == 2
    assert_exact(db)


def test_no_fold_outside_read_committed(db):
    log(db)
    for level in ("REPEATABLE READ", "SERIALIZABLE"):
        with db.transaction():
            db.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            pgtap.results_eq(db, FOLD, [(0,)], description=f"no fold under {level}")
            pgtap.results_eq(db, MARK, [(0, None, None)])
    assert fold_everything(db) == 1
    assert_exact(db)


def test_a_maintenance_delete_waits_for_a_fold_in_flight(pg, db, db_name):
    for mode, status in PAIRS:
        log(db, "dot_iu_healthcheck", mode, status)
    db.execute(FOLD)
    with pg.connect(db_name, autocommit=False) as folder:
        assert folder.execute(FOLD).fetchone()[0] == len(PAIRS)  # counted, not committed
        with db.transaction():
            db.execute(MAINTENANCE)
            db.execute("SET LOCAL lock_timeout = '200ms'")
            pgtap.throws_ok(db, "DELETE FROM dot_iu_command_run WHERE run_status = 'failed'",
                            "55P03")
        folder.commit()
    with db.transaction():
        db.execute(MAINTENANCE)
        db.execute("DELETE FROM dot_iu_command_run WHERE run_status = 'failed'")
    assert_exact(db, "the delete after the fold took its rows off the tally")


def test_a_delete_without_a_watermark_row_is_refused(db):
    log(db)
    db.execute(f"DELETE FROM {WATERMARK}")
    pgtap.results_eq(db, FOLD, [(0,)], description="a fold without the row does nothing")
    with db.transaction():
        db.execute(MAINTENANCE)
        pgtap.throws_ok(db, "DELETE FROM dot_iu_command_run", "55000")
    db.execute(REBUILD)
    pgtap.results_eq(db, f"SELECT count(*) FROM {WATERMARK}", [(1,)])
    assert_exact(db, "the rebuild put the row back")


def test_a_bulk_insert_past_the_watermark_stays_exact_until_folded(db):
    bulk_insert(db, 5000, ("plan", "planned"))
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")
    assert_exact(db, "after a bulk insert, nothing folded")
    assert fold_everything(db) == 5000
    assert_exact(db, "after two folds")


def test_a_run_written_with_overriding_system_value_below_the_watermark_needs_a_rebuild(db):
    """The documented limit: the ledger's run_ids come from its sequence. A row forced below
    the watermark is outside both the tally and the range past it until a rebuild."""
    for _ in range(3):
        log(db)
    fold_everything(db)
    db.execute(
        "INSERT INTO dot_iu_command_run (run_id, command_name, run_mode, run_status, mutating,"
        " actor, params_digest) OVERRIDING SYSTEM VALUE"
        " VALUES (0, 'dot_iu_add_piece', 'plan', 'planned', true, 'forced', %s)", (DIGEST,))
    assert db.execute(HEALTH).fetchone()[0] == 3
    report = db.execute(REBUILD).fetchone()[0]
    assert (report["runs_before"], report["runs"]) == (3, 4)
    assert_exact(db, "after the rebuild")


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
    assert folded_through(db) > 0, f"TALLY_SEED={seed}: no fold ever moved the watermark"
    assert_exact(db, f"TALLY_SEED={seed}, {outcomes}")
    fold_everything(db)
    assert_exact(db, f"TALLY_SEED={seed}, folded")
    rebuilt = db.execute(REBUILD).fetchone()[0]
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
            conn.execute(MAINTENANCE)
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
    fold_everything(db)
    last = log(db)  # one run past the watermark
    runs = db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0]
    db.execute(f"UPDATE {TALLY} SET runs = runs + 5")
    db.execute(f"INSERT INTO {TALLY} VALUES ('dot_iu_ghost', 'plan', 'planned', 11)")
    drifted = db.execute("SELECT total_runs FROM v_dot_iu_command_run_health").fetchone()[0]
    assert drifted != runs
    report = db.execute(REBUILD).fetchone()[0]
    groups = db.execute("SELECT count(*) FROM (SELECT DISTINCT command_name, run_mode,"
                        " run_status FROM dot_iu_command_run) AS g").fetchone()[0]
    assert report == {"runs": runs, "commands": 3, "tally_rows": groups,
                      "runs_before": drifted, "folded_through": last}
    pgtap.results_eq(db, MARK, [(last, None, None)])
    assert_exact(db, "after the rebuild")


def test_rebuild_of_an_empty_ledger_empties_the_tally(db):
    db.execute(f"INSERT INTO {TALLY} VALUES ('dot_iu_ghost', 'plan', 'planned', 2)")
    report = db.execute(REBUILD).fetchone()[0]
    assert report == {"runs": 0, "commands": 0, "tally_rows": 0, "runs_before": 2,
                      "folded_through": 0}
    pgtap.is_empty(db, f"SELECT * FROM {TALLY}")


def test_rebuild_waits_for_in_flight_writers(pg, db, db_name):
    with pg.connect(db_name, autocommit=False) as writer:
        log(writer)  # uncommitted: the rebuild must not count around it
        db.execute("SET lock_timeout = '200ms'")
        pgtap.throws_ok(db, REBUILD, "55P03")
        db.execute("RESET lock_timeout")
        writer.commit()
    report = db.execute(REBUILD).fetchone()[0]
    assert report["runs"] == report["runs_before"] == 1
    assert_exact(db)


# -- the revision ------------------------------------------------------------------------------

DELTA_SUMS_0008 = f"""
SELECT command_name, run_mode, run_status, sum(runs)::bigint AS runs
  FROM (SELECT command_name, run_mode, run_status, runs FROM {TALLY}
        UNION ALL
        SELECT command_name, run_mode, run_status, runs FROM {DELTA}) AS counted
 GROUP BY 1, 2, 3 HAVING sum(runs) <> 0"""
PLAIN_SUMS = """
SELECT command_name, run_mode, run_status, count(*)
  FROM dot_iu_command_run GROUP BY 1, 2, 3"""


def assert_exact_0008(conn, what=""):
    """0008's invariant: the views equal plain aggregates, the tally plus deltas the ledger."""
    pgtap.set_eq(conn, REGISTRY, conn.execute(PLAIN_REGISTRY).fetchall(),
                 description=f"registry at 0008 ({what})")
    pgtap.results_eq(conn, HEALTH, conn.execute(PLAIN_HEALTH).fetchall(),
                     description=f"health at 0008 ({what})")
    pgtap.set_eq(conn, DELTA_SUMS_0008, conn.execute(PLAIN_SUMS).fetchall(),
                 description=f"tally plus deltas at 0008 ({what})")


def test_0008_backfills_an_existing_ledger_and_downgrades_to_v1(
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
    assert_exact_0008(empty_db, "backfilled")
    log(empty_db)
    alembic(empty_db_url, "downgrade", "0007_runtime_reader_v2")
    pgtap.hasnt_table(empty_db, TALLY)
    pgtap.hasnt_table(empty_db, DELTA)
    pgtap.hasnt_function(empty_db, "fn_dot_iu_command_run_tally_rebuild")
    pgtap.hasnt_function(empty_db, "fn_dot_iu_command_run_tally_fold")
    pgtap.results_eq(empty_db, HEALTH, empty_db.execute(PLAIN_HEALTH).fetchall())


def test_0009_carries_the_0008_deltas_over_and_the_downgrade_restores_0008_exactly(
        pg, empty_db, empty_db_url, alembic):
    alembic(empty_db_url, "upgrade", "0008_run_tally")
    for command in ("dot_iu_add_piece", "dot_iu_healthcheck"):
        for mode, status in PAIRS:
            log(empty_db, command, mode, status)
    empty_db.execute(FOLD)  # 0008's fold: 18 deltas into the tally
    log(empty_db)
    log(empty_db, "dot_iu_healthcheck", "plan", "planned")  # two deltas left pending
    with empty_db.transaction():
        empty_db.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")  # 0008's guard
        empty_db.execute("DELETE FROM dot_iu_command_run WHERE run_status = 'failed'")
    assert_exact_0008(empty_db, "before the upgrade")
    before = (empty_db.execute(REGISTRY + " ORDER BY command_name").fetchall(),
              empty_db.execute(HEALTH).fetchall())
    last = empty_db.execute("SELECT max(run_id) FROM dot_iu_command_run").fetchone()[0]

    result = alembic(empty_db_url, "upgrade", "0009_tally_watermark")
    runs = before[1][0][0]
    assert (f"dot_iu_command_run_tally carried over: {runs} run(s), 8 delta(s) folded,"
            f" watermark at run_id {last}") in result.stderr
    assert "dot_iu_gate_snapshot: {" in result.stderr
    pgtap.hasnt_table(empty_db, DELTA)
    pgtap.results_eq(empty_db, MARK, [(last, None, None)])
    assert (empty_db.execute(REGISTRY + " ORDER BY command_name").fetchall(),
            empty_db.execute(HEALTH).fetchall()) == before
    assert_exact(empty_db, "carried over")
    for mode, status in PAIRS:
        log(empty_db, "dot_iu_add_piece", mode, status)
    fold_everything(empty_db)
    log(empty_db)

    result = alembic(empty_db_url, "downgrade", "0008_run_tally")
    assert "dot_iu_command_run_tally recounted from the ledger: {" in result.stderr
    for gone in (WATERMARK, "dot_iu_gate_snapshot"):
        pgtap.hasnt_table(empty_db, gone)
    pgtap.hasnt_function(empty_db, "fn_dot_iu_gate_snapshot_refresh")
    pgtap.has_trigger(empty_db, "dot_iu_command_run", "tg_dot_iu_command_run_tally_insert")
    assert_exact_0008(empty_db, "after the downgrade")
    log(empty_db)  # 0008's insert trigger counts again
    assert_exact_0008(empty_db, "a run after the downgrade")
    alembic(empty_db_url, "upgrade", "head")
    assert_exact(empty_db, "upgraded again")
