"""The gate snapshot row (docs/gates.md): what the logger records as a run's gate_snapshot.

dot_iu_gate_snapshot holds what the gate readers say (fn_iu_gate_state: 'true' only inside a
live window) for every gate, and valid_until, when the first window in it ends. It must equal
the readings at every moment and for every transaction: after any write to a gate key of
dot_config or to the transition ledger, inside the writer's own transaction, and under
concurrent gate calls; past valid_until the logger computes the readings afresh. Writers of
other dot_config keys never touch it. Gate writers lock it before their gate row, so a
transaction that changes several gates cannot deadlock with another gate call.
"""

from __future__ import annotations

import threading
import time

import pgtap
import psycopg
import pytest
from gate_helpers import GOVERNABLE, NEVER_FLIP, close_call, gate_open, open_call, set_value

DIGEST = "0123456789abcdef0123456789abcdef"
SNAPSHOT = "SELECT snapshot FROM dot_iu_gate_snapshot"
# The readings, written here independently of the refresh function: a gate reads open when its
# value is exactly 'true' and its latest transition (by id) is an open live now.
PLAIN = """
SELECT jsonb_object_agg(g.key, CASE WHEN c.value = 'true' AND coalesce((
           SELECT t.action = 'open' AND t.created_at <= clock_timestamp()
                  AND t.expires_at > clock_timestamp()
                  AND t.expires_at <= clock_timestamp() + interval '1 hour'
             FROM iu_gate_transition AS t WHERE t.gate_key = g.key
            ORDER BY t.transition_id DESC LIMIT 1), false) THEN 'true' ELSE 'false' END)
  FROM unnest(%s::text[]) AS g (key)
  LEFT JOIN dot_config AS c ON c.key = g.key"""
GATES = list(GOVERNABLE + NEVER_FLIP)


def readings(conn) -> dict:
    return conn.execute(PLAIN, (GATES,)).fetchone()[0]


def assert_fresh(conn, what: str) -> None:
    now = readings(conn)
    pgtap.results_eq(conn, SNAPSHOT, [(now,)],
                     description=f"dot_iu_gate_snapshot equals the readings ({what})")
    # open_gates, which the logger's gate rule reads, names exactly the gates reading open.
    pgtap.results_eq(conn, "SELECT open_gates FROM dot_iu_gate_snapshot",
                     [(sorted(gate for gate, value in now.items() if value == "true"),)],
                     description=f"open_gates names the gates reading open ({what})")


def log(conn) -> dict:
    run_id = conn.execute("SELECT fn_dot_iu_command_log('dot_iu_add_piece', 'plan', 'planned',"
                          " 'ops', %s)", (DIGEST,)).fetchone()[0]
    return conn.execute("SELECT gate_snapshot FROM dot_iu_command_run WHERE run_id = %s",
                        (run_id,)).fetchone()[0]


def test_the_snapshot_row_has_its_shape_triggers_and_no_public_privileges(db):
    table = "dot_iu_gate_snapshot"
    pgtap.has_table(db, table)
    pgtap.col_is_pk(db, table, ["singleton"])
    pgtap.col_type_is(db, table, "snapshot", "jsonb")
    pgtap.col_type_is(db, table, "valid_until", "timestamp with time zone")
    pgtap.col_not_null(db, table, "snapshot")
    pgtap.has_comment(db, "table", table)
    pgtap.table_privs_are(db, table, "public", [])
    pgtap.results_eq(db, f"SELECT count(*) FROM {table}", [(1,)])
    pgtap.throws_ok(db, f"INSERT INTO {table} (singleton, snapshot) VALUES (false, '{{}}')",
                    "23514")
    pgtap.throws_ok(db, f"UPDATE {table} SET snapshot = '[]'", "23514")
    pgtap.col_type_is(db, table, "open_gates", "text[]")
    pgtap.col_not_null(db, table, "open_gates")
    pgtap.results_eq(db, "SELECT attgenerated, pg_get_expr(d.adbin, d.adrelid)"
                     " FROM pg_attribute AS a JOIN pg_attrdef AS d"
                     " ON (d.adrelid, d.adnum) = (a.attrelid, a.attnum)"
                     " WHERE a.attrelid = 'dot_iu_gate_snapshot'::regclass"
                     " AND a.attname = 'open_gates'",
                     [("s", "fn_dot_iu_gate_open_keys(snapshot)")])
    for table_name, trigger, definition in (
            ("dot_config", "tg_dot_config_gate_snapshot",
             "AFTER INSERT OR DELETE OR UPDATE ON public.dot_config FOR EACH ROW"),
            ("dot_config", "tg_dot_config_gate_snapshot_truncate",
             "AFTER TRUNCATE ON public.dot_config FOR EACH STATEMENT"),
            ("iu_gate_transition", "tg_iu_gate_transition_gate_snapshot",
             "AFTER INSERT ON public.iu_gate_transition FOR EACH STATEMENT")):
        pgtap.trigger_is(db, table_name, trigger, "public.fn_dot_iu_gate_snapshot_sync")
        pgtap.results_eq(db, "SELECT pg_get_triggerdef(oid) ~ %s FROM pg_trigger"
                         " WHERE tgname = %s", [(True,)], params=(definition, trigger))
    assert_fresh(db, "as migrated")
    assert set(db.execute(SNAPSHOT).fetchone()[0]) == set(GATES)


def test_every_kind_of_write_that_changes_a_reading_refreshes_it(db):
    gate_open(db, gate="iu_core.delivery_enabled", ttl=600)
    assert_fresh(db, "an open")
    assert db.execute(SNAPSHOT).fetchone()[0]["iu_core.delivery_enabled"] == "true"
    db.execute("UPDATE dot_config SET value = 'maybe' WHERE key = 'iu_core.delivery_enabled'")
    assert_fresh(db, "a gate set to a value that reads closed")
    db.execute("DELETE FROM dot_config WHERE key = 'queue.dlq.replay_enabled'")
    assert_fresh(db, "a deleted gate reads closed")
    db.execute("INSERT INTO dot_config (key, value) VALUES ('queue.dlq.replay_enabled', 'x')")
    assert_fresh(db, "insert of a gate")
    gate_open(db, gate="iu_core.composer_enabled", ttl=600)
    db.execute(*close_call(gate="iu_core.composer_enabled"))
    assert_fresh(db, "a close")
    with db.transaction() as tx:
        db.execute("TRUNCATE dot_config")
        assert_fresh(db, "truncate of dot_config")
        raise psycopg.Rollback(tx)
    assert_fresh(db, "the truncate rolled back")


def test_a_write_to_another_key_does_not_touch_the_row(pg, db, db_name):
    before = db.execute("SELECT refreshed_at FROM dot_iu_gate_snapshot").fetchone()[0]
    db.execute("INSERT INTO dot_config (key, value) VALUES ('iu_core.some_setting', '7')")
    db.execute("UPDATE dot_config SET value = '8' WHERE key = 'iu_core.some_setting'")
    after = db.execute("SELECT refreshed_at FROM dot_iu_gate_snapshot").fetchone()[0]
    assert after == before, "a non-gate key is not a gate"
    with pg.connect(db_name, autocommit=False) as writer:
        writer.execute("UPDATE dot_config SET value = '9' WHERE key = 'iu_core.some_setting'")
        db.execute("SET lock_timeout = '1s'")
        gate_open(db, gate="iu_core.composer_enabled", ttl=60)  # does not wait for the writer
        writer.rollback()
    assert_fresh(db, "a gate call beside a writer of another key")


def test_past_valid_until_the_logger_records_the_readings_afresh(db):
    gate_open(db, gate="iu_core.composer_enabled", ttl=1)
    inside = log(db)
    assert inside["iu_core.composer_enabled"] == "true"
    valid_until = db.execute("SELECT valid_until - clock_timestamp() FROM dot_iu_gate_snapshot"
                             ).fetchone()[0]
    assert valid_until.total_seconds() <= 1
    time.sleep(1.2)
    assert db.execute(SNAPSHOT).fetchone()[0]["iu_core.composer_enabled"] == "true", \
        "nothing refreshed the row: only the clock moved"
    assert log(db)["iu_core.composer_enabled"] == "false"
    assert log(db) == readings(db)


def test_the_logger_records_the_readings_and_a_writer_sees_its_own_change(db):
    assert log(db) == readings(db)
    with db.transaction() as tx:
        gate_open(db, gate="iu_core.three_axis_auto_refresh_enabled", ttl=60)
        assert log(db)["iu_core.three_axis_auto_refresh_enabled"] == "true"
        raise psycopg.Rollback(tx)
    assert log(db)["iu_core.three_axis_auto_refresh_enabled"] == "false"
    assert_fresh(db, "after the rollback")


def test_a_value_set_true_behind_the_protocol_is_recorded_as_closed(db):
    set_value(db, "iu_core.composer_enabled", "true")
    assert log(db)["iu_core.composer_enabled"] == "false"
    assert_fresh(db, "a windowless 'true'")


def test_concurrent_opens_of_different_gates_lose_neither_change(pg, db, db_name):
    """The second call waits for the first on the snapshot row, then reads afresh."""
    with pg.connect(db_name, autocommit=False) as first:
        first.execute(*open_call(gate="iu_core.composer_enabled"))
        done = threading.Event()
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with pg.connect(db_name, autocommit=False) as conn:
                    conn.execute(*open_call(gate="iu_core.delivery_enabled"))
                    conn.commit()
            except BaseException as error:  # noqa: BLE001 - asserted below
                errors.append(error)
            finally:
                done.set()

        thread = threading.Thread(target=second)
        thread.start()
        assert not done.wait(0.5), "the second call waits on the snapshot row"
        first.commit()
        thread.join(10)
    assert not errors, errors
    snapshot = db.execute(SNAPSHOT).fetchone()[0]
    assert (snapshot["iu_core.composer_enabled"], snapshot["iu_core.delivery_enabled"]) == (
        "true", "true")
    assert_fresh(db, "after two concurrent opens")


def test_under_repeatable_read_a_concurrent_refresh_raises_40001(pg, db, db_name):
    with pg.connect(db_name, autocommit=False) as late:
        late.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        late.execute("SELECT 1 FROM dot_config LIMIT 1")  # the snapshot is taken
        gate_open(db, gate="iu_core.composer_enabled", ttl=60)
        with pytest.raises(psycopg.errors.SerializationFailure):
            late.execute("UPDATE dot_config SET value = 'false'"
                         " WHERE key = 'iu_core.delivery_enabled'")
        late.rollback()
    assert_fresh(db, "the failed writer changed nothing")


def test_refresh_repairs_a_tampered_or_missing_row(db):
    db.execute("UPDATE dot_iu_gate_snapshot SET snapshot = '{\"forged\": \"true\"}', "
               "valid_until = 'infinity'")
    pgtap.results_eq(db, "SELECT fn_dot_iu_gate_snapshot_refresh()", [(readings(db),)])
    assert_fresh(db, "repaired")
    db.execute("DELETE FROM dot_iu_gate_snapshot")
    assert log(db) == readings(db), "with no row the logger computes the readings"
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


def test_open_gates_is_generated_from_the_snapshot_and_nobody_writes_it(db):
    gate_open(db, gate="iu_core.composer_enabled", ttl=600)
    gate_open(db, gate="iu_core.delivery_enabled", ttl=600)
    assert_fresh(db, "two gates open")
    pgtap.results_eq(db, "SELECT open_gates FROM dot_iu_gate_snapshot",
                     [(["iu_core.composer_enabled", "iu_core.delivery_enabled"],)])
    # Not even a superuser sets it: a column generated ALWAYS (428C9).
    pgtap.throws_ok(db, "UPDATE dot_iu_gate_snapshot"
                    " SET open_gates = '{iu_core.vector_sync_enabled}'", "428C9")
    # Whatever writes the snapshot, the column follows it: a forged row opens what it says,
    # and the refresh puts both back.
    db.execute("UPDATE dot_iu_gate_snapshot"
               """ SET snapshot = '{"b": "true", "a": "true", "c": "x"}'""")
    pgtap.results_eq(db, "SELECT open_gates FROM dot_iu_gate_snapshot", [(["a", "b"],)])
    db.execute("SELECT fn_dot_iu_gate_snapshot_refresh()")
    assert_fresh(db, "refreshed after a forged row")


@pytest.mark.parametrize(("snapshot", "keys"), [
    ('{}', []),
    ('{"g": "false", "h": "TRUE", "i": " true", "j": null}', []),
    ('{"g": true}', ["g"]),  # read as ->> reads it, as the logger's readings afresh do
    ('{"z": "true", "a": "true", "m": "false"}', ["a", "z"]),
    ('[]', []),
    ('"true"', []),
    ('null', []),
])
def test_open_keys_names_only_text_true_and_opens_nothing_for_a_non_object(db, snapshot, keys):
    pgtap.results_eq(db, "SELECT fn_dot_iu_gate_open_keys(%s::jsonb)", [(keys,)],
                     params=(snapshot,))


def test_open_keys_is_immutable_strict_and_the_owners_alone(db):
    pgtap.results_eq(db, "SELECT provolatile, proisstrict, proowner::regrole::text,"
                     " array_to_string(proconfig, ',')"
                     " FROM pg_proc WHERE oid = 'fn_dot_iu_gate_open_keys(jsonb)'::regprocedure",
                     [("i", True, "dot_iu_owner", "search_path=pg_catalog, pg_temp")])
    pgtap.results_eq(db, "SELECT fn_dot_iu_gate_open_keys(NULL)", [(None,)])
    for role in ("PUBLIC", "dot_iu_runtime", "dot_iu_gate_operator", "dot_iu_auditor"):
        pgtap.results_eq(db, "SELECT has_function_privilege(%s,"
                         " 'fn_dot_iu_gate_open_keys(jsonb)', 'EXECUTE')", [(False,)],
                         params=(role.lower() if role == "PUBLIC" else role,))
