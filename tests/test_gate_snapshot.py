"""The gate snapshot row (0009_tally_watermark): what the logger records as a run's gate_snapshot.

dot_iu_gate_snapshot must equal, at every moment and for every transaction, the aggregate of the
known gates in dot_config that the logger used to compute on each call: after any write to
dot_config, inside the writer's own transaction, and under concurrent writers of different
gates. Gate writers lock that row before their gate row, so a transaction that changes several
gates cannot deadlock with another gate call.
"""

from __future__ import annotations

import threading

import pgtap
import psycopg
import pytest
from gate_helpers import close_call, open_call

DIGEST = "0123456789abcdef0123456789abcdef"
SNAPSHOT = "SELECT snapshot FROM dot_iu_gate_snapshot"
# The logger v2's aggregate, written here independently of the refresh function.
PLAIN = """
SELECT coalesce(jsonb_object_agg(c.key, c.value), '{}')
  FROM dot_config AS c
 WHERE c.key IN ('iu_core.composer_enabled', 'iu_core.structure_ops_enabled',
                 'iu_core.delivery_enabled', 'iu_core.three_axis_auto_refresh_enabled',
                 'queue.job_substrate.enabled', 'queue.dlq.replay_enabled',
                 'iu_enact.allow_no_review_decision', 'iu_core.vector_sync_enabled',
                 'iu_core.operator_runtime_enabled')"""


def assert_fresh(conn, what: str) -> None:
    pgtap.results_eq(conn, SNAPSHOT, [conn.execute(PLAIN).fetchone()],
                     description=f"dot_iu_gate_snapshot equals dot_config's gates ({what})")


def log(conn) -> dict:
    run_id = conn.execute("SELECT fn_dot_iu_command_log('dot_iu_add_piece', 'plan', 'planned',"
                          " 'ops', %s)", (DIGEST,)).fetchone()[0]
    return conn.execute("SELECT gate_snapshot FROM dot_iu_command_run WHERE run_id = %s",
                        (run_id,)).fetchone()[0]


def test_the_snapshot_row_has_its_shape_trigger_and_no_public_privileges(db):
    table = "dot_iu_gate_snapshot"
    pgtap.has_table(db, table)
    pgtap.col_is_pk(db, table, ["singleton"])
    pgtap.col_type_is(db, table, "snapshot", "jsonb")
    pgtap.col_not_null(db, table, "snapshot")
    pgtap.has_comment(db, "table", table)
    pgtap.table_privs_are(db, table, "public", [])
    pgtap.results_eq(db, f"SELECT count(*) FROM {table}", [(1,)])
    pgtap.throws_ok(db, f"INSERT INTO {table} (singleton, snapshot) VALUES (false, '{{}}')",
                    "23514")
    pgtap.throws_ok(db, f"UPDATE {table} SET snapshot = '[]'", "23514")
    pgtap.has_trigger(db, "dot_config", "tg_dot_config_gate_snapshot")
    pgtap.trigger_is(db, "dot_config", "tg_dot_config_gate_snapshot",
                     "public.fn_dot_iu_gate_snapshot_sync")
    pgtap.results_eq(
        db, "SELECT pg_get_triggerdef(oid) ~ 'AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON"
        " public.dot_config FOR EACH STATEMENT' FROM pg_trigger"
        " WHERE tgname = 'tg_dot_config_gate_snapshot'", [(True,)])
    assert_fresh(db, "as migrated")


def test_every_kind_of_write_to_dot_config_refreshes_it(db):
    db.execute("UPDATE dot_config SET value = 'maybe' WHERE key = 'iu_core.delivery_enabled'")
    assert_fresh(db, "update of a gate")
    db.execute("DELETE FROM dot_config WHERE key = 'queue.dlq.replay_enabled'")
    assert_fresh(db, "delete of a gate")
    assert "queue.dlq.replay_enabled" not in db.execute(SNAPSHOT).fetchone()[0]
    db.execute("INSERT INTO dot_config (key, value) VALUES ('queue.dlq.replay_enabled', 'x')")
    assert_fresh(db, "insert of a gate")
    before = db.execute(SNAPSHOT).fetchone()[0]
    db.execute("INSERT INTO dot_config (key, value) VALUES ('iu_core.some_setting', '7')")
    assert db.execute(SNAPSHOT).fetchone()[0] == before, "a non-gate key is not a gate"
    with db.transaction() as tx:
        db.execute("TRUNCATE dot_config")
        pgtap.results_eq(db, SNAPSHOT, [({},)], description="truncate of dot_config")
        raise psycopg.Rollback(tx)
    assert_fresh(db, "the truncate rolled back")


def test_the_logger_records_the_snapshot_and_a_writer_sees_its_own_change(db):
    assert log(db) == db.execute(PLAIN).fetchone()[0]
    with db.transaction() as tx:
        db.execute("UPDATE dot_config SET value = 'true'"
                   " WHERE key = 'iu_core.three_axis_auto_refresh_enabled'")
        assert log(db)["iu_core.three_axis_auto_refresh_enabled"] == "true"
        raise psycopg.Rollback(tx)
    assert log(db)["iu_core.three_axis_auto_refresh_enabled"] == "false"
    assert_fresh(db, "after the rollback")


def test_concurrent_writers_of_different_gates_lose_neither_change(pg, db, db_name):
    """The second refresh waits for the first writer, then reads dot_config afresh."""
    with pg.connect(db_name, autocommit=False) as first:
        first.execute("UPDATE dot_config SET value = 'a' WHERE key = 'iu_core.composer_enabled'")
        done = threading.Event()
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with pg.connect(db_name, autocommit=False) as conn:
                    conn.execute("UPDATE dot_config SET value = 'b'"
                                 " WHERE key = 'iu_core.delivery_enabled'")
                    conn.commit()
            except BaseException as error:  # noqa: BLE001 - asserted below
                errors.append(error)
            finally:
                done.set()

        thread = threading.Thread(target=second)
        thread.start()
        assert not done.wait(0.5), "the second writer waits on the snapshot row"
        first.commit()
        thread.join(10)
    assert not errors, errors
    snapshot = db.execute(SNAPSHOT).fetchone()[0]
    assert (snapshot["iu_core.composer_enabled"], snapshot["iu_core.delivery_enabled"]) == (
        "a", "b")
    assert_fresh(db, "after two concurrent writers")


def test_under_repeatable_read_a_concurrent_refresh_raises_40001(pg, db, db_name):
    with pg.connect(db_name, autocommit=False) as late:
        late.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        late.execute("SELECT 1 FROM dot_config LIMIT 1")  # the snapshot is taken
        db.execute("UPDATE dot_config SET value = 'a' WHERE key = 'iu_core.composer_enabled'")
        with pytest.raises(psycopg.errors.SerializationFailure):
            late.execute("UPDATE dot_config SET value = 'b'"
                         " WHERE key = 'iu_core.delivery_enabled'")
        late.rollback()
    assert_fresh(db, "the failed writer changed nothing")


def test_refresh_repairs_a_tampered_or_missing_row(db):
    db.execute("UPDATE dot_iu_gate_snapshot SET snapshot = '{\"forged\": \"true\"}'")
    pgtap.results_eq(db, "SELECT fn_dot_iu_gate_snapshot_refresh()",
                     [db.execute(PLAIN).fetchone()])
    assert_fresh(db, "repaired")
    db.execute("DELETE FROM dot_iu_gate_snapshot")
    db.execute("SELECT fn_dot_iu_gate_snapshot_refresh()")
    assert_fresh(db, "re-inserted")


def test_gate_writers_lock_the_snapshot_row_first_so_two_gates_in_one_transaction_never_deadlock(
        pg, db_name):
    """T1 opens gate A, T2 tries gate B (it waits on the snapshot row, holding nothing), then
    T1 opens gate B too: with the v1 lock order (gate row first) T2 would hold B's row while
    waiting for T1, and T1 would wait for B's row: a deadlock."""
    gate_a, gate_b = "iu_core.composer_enabled", "iu_core.delivery_enabled"
    result: dict[str, object] = {}
    with pg.connect(db_name, autocommit=False) as first:
        first.execute(*open_call(gate=gate_a))

        def second() -> None:
            with pg.connect(db_name, autocommit=False) as conn:
                conn.execute("SET lock_timeout = '10s'")
                try:
                    conn.execute(*open_call(gate=gate_b))
                    conn.commit()
                    result["second"] = "opened"
                except psycopg.Error as error:
                    result["second"] = error.sqlstate

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second call waits for the first transaction"
        first.execute(*open_call(gate=gate_b))
        first.commit()
        thread.join(15)
    assert result == {"second": "55000"}, "it then finds gate B already open, no deadlock"
    with pg.connect(db_name) as conn:
        for gate in (gate_a, gate_b):
            conn.execute(*close_call(gate=gate))
        assert_fresh(conn, "after the gate calls")
