"""The catalog binding, the rows a runtime keeps and the lease it holds (docs/runtime.md, "The
catalog binding" and "Holding the lease"), as a real login of dot_iu_runtime.

The database side: fn_dot_iu_command_binding digests a command's catalog row and its target's
pg_proc entry, and fn_dot_iu_runtime_apply_begin refuses a binding that is no longer current
and holds the catalog row until the apply ends. The runtime side: an apply builds its statement
from the row the runtime kept, a stale row is read again and applied once more, and inside
``holding_lease()`` an apply is one transaction. Every transaction the runtime makes is counted
by a wrapper around its real executor.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import pgtap
import psycopg
import pytest
from runtime_helpers import (
    COMPOSER_GATE,
    RUNTIME_GATE,
    calls,
    create_login,
    drop_login,
    executor,
    gate_close,
    gate_open,
    login_conninfo,
    prepare_db,
    runs,
    runtime,
)

from substrate.runtime import DatabaseError
from substrate.runtime.executors import Statement

C = "6f1c0b7e-8d56-4d3e-9d7e-111111111111"
P = "6f1c0b7e-8d56-4d3e-9d7e-222222222222"
ADD = {"collection_id": C, "piece_id": P, "position": 3}
BINDING = "SELECT public.fn_dot_iu_command_binding(%s)"
BEGIN = ("SELECT public.fn_dot_iu_runtime_apply_begin('dot_iu_healthcheck', 'operator_runtime',"
         " 'me:1:a', %s, %s)")
# dot_iu_add_piece's target again, its first two argument names swapped: the same signature
# (the catalog row still resolves), but a statement built from the old names binds the
# collection where the piece now goes.
SWAPPED_ADD_PIECE = """
DROP FUNCTION public.fn_iu_collection_add_piece(uuid, uuid, integer);
CREATE FUNCTION public.fn_iu_collection_add_piece(p_piece_id uuid, p_collection_id uuid,
    p_position integer)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  INSERT INTO public.rt_test_standin_call (fn) VALUES ('fn_iu_collection_add_piece');
  RETURN pg_catalog.jsonb_build_object('piece', p_piece_id, 'collection', p_collection_id);
END
$standin$;
GRANT EXECUTE ON FUNCTION public.fn_iu_collection_add_piece(uuid, uuid, integer)
    TO dot_iu_runtime;
"""


@pytest.fixture(scope="module")
def login(pg):
    made = create_login(pg)
    yield made
    drop_login(pg, made)


@pytest.fixture
def rt_db(db):
    prepare_db(db)
    return db


class Counted:
    """The runtime's real executor, naming every transaction it runs."""

    def __init__(self, inner):
        self.inner = inner
        self.transactions: list[str] = []

    def run(self, statements, *, read_only=False):
        self.transactions.append(_kind(statements))
        return self.inner.run(statements, read_only=read_only)

    def close(self):
        self.inner.close()


def _kind(statements) -> str:
    first, rest = statements[0].sql, " ".join(s.sql for s in statements[1:])
    if "dot_iu_command_catalog" in first and "fn_dot_iu_command_binding" in first:
        return "resolve+gates" if "v_dot_iu_gates" in rest else "resolve"
    if "apply_begin" in first:  # "take+": the lease is taken by apply_begin's own statement
        return (("take+" if "lease_acquire" in first else "") + "apply"
                + ("+release" if "lease_release" in rest else ""))
    for name, kind in (("lease_release", "release"), ("fn_dot_iu_command_log", "record")):
        if name in first:
            return kind
    return "other"


@pytest.fixture
def rt(pg, login, db_name, rt_db):
    made = runtime(pg, login, db_name)
    made.executor = Counted(made.executor)
    made.context = (pg, login, db_name)
    yield made
    made.executor.close()


def runtime_for(made):
    """Another runtime on the same database and login as ``made``."""
    return runtime(*made.context)


@pytest.fixture
def as_runtime(pg, login, db_name, rt_db):
    with psycopg.connect(login_conninfo(pg, login, db_name), autocommit=True) as conn:
        yield conn


@pytest.fixture
def other_session(pg, db_name):
    """A second session (superuser, autocommit) whose lock waits end after 300 ms (55P03)."""
    conn = pg.connect(db_name)
    conn.execute("SET lock_timeout = '300ms'")
    yield conn
    conn.close()


def lease(conn) -> tuple:
    return conn.execute("SELECT epoch, held, expires_at FROM public.v_dot_iu_runtime_lease"
                        " WHERE lease_name = 'operator_runtime'").fetchone()


def binding(conn, command="dot_iu_healthcheck") -> str | None:
    return conn.execute(BINDING, (command,)).fetchone()[0]


# --- the binding, in the database --------------------------------------------------------------

def test_the_binding_is_stable_and_null_for_an_uncatalogued_command(as_runtime):
    first = binding(as_runtime)
    assert first is not None and len(first) == 32
    assert binding(as_runtime) == first
    assert binding(as_runtime, "dot_iu_no_such_command") is None
    assert binding(as_runtime, "dot_iu_add_piece") != first


def test_the_binding_changes_with_the_catalog_row_and_with_the_target(rt_db, as_runtime):
    before = binding(as_runtime)
    rt_db.execute("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
                  " WHERE command_name = 'dot_iu_healthcheck'")
    changed_row = binding(as_runtime)
    rt_db.execute("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
                  " WHERE command_name = 'dot_iu_healthcheck'")
    assert changed_row != before and binding(as_runtime) == before
    add_piece = binding(as_runtime, "dot_iu_add_piece")
    rt_db.execute(SWAPPED_ADD_PIECE)
    assert binding(as_runtime, "dot_iu_add_piece") not in (add_piece, None)
    rt_db.execute("DROP FUNCTION public.fn_iu_collection_add_piece(uuid, uuid, integer)")
    assert binding(as_runtime, "dot_iu_add_piece") is not None  # the row is still catalogued


def test_apply_begin_refuses_a_binding_that_is_not_current(as_runtime):
    epoch = as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                               " 'me:1:a', 60)").fetchone()[0]
    pgtap.throws_ok(as_runtime, BEGIN, "55000",
                    "the catalog binding of dot_iu_healthcheck changed since it was read",
                    params=(epoch, "0123456789abcdef0123456789abcdef"))
    pgtap.lives_ok(as_runtime, BEGIN, params=(epoch, binding(as_runtime)))
    pgtap.lives_ok(as_runtime, "SELECT public.fn_dot_iu_runtime_apply_begin("
                   "'dot_iu_healthcheck', 'operator_runtime', 'me:1:a', %s)", params=(epoch,),
                   description="without a binding (four arguments) nothing is compared")


def test_apply_begin_holds_the_catalog_row_until_the_apply_ends(as_runtime, other_session):
    epoch = as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                               " 'me:1:a', 60)").fetchone()[0]
    update = ("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
              " WHERE command_name = 'dot_iu_healthcheck'")
    with as_runtime.transaction():
        as_runtime.execute(BEGIN, (epoch, binding(as_runtime)))
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other_session.execute(update)
    other_session.execute(update)  # free once the apply ended


def test_apply_begin_under_repeatable_read_fails_on_a_close_that_committed_meanwhile(
        rt_db, as_runtime):
    epoch = as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                               " 'me:1:a', 60)").fetchone()[0]
    as_runtime.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    as_runtime.execute("SELECT 1")  # the transaction's snapshot, taken before the close
    gate_close(rt_db, RUNTIME_GATE)
    with pytest.raises(psycopg.errors.SerializationFailure):
        as_runtime.execute(BEGIN, (epoch, None))
    as_runtime.execute("ROLLBACK")


def test_apply_begin_reads_the_gates_afresh_once_the_cached_snapshot_has_expired(
        rt_db, as_runtime):
    """A window that ended leaves 'true' in dot_config and in the snapshot, whose validity
    ended with it: apply_begin then reads each gate afresh and finds it shut."""
    epoch = as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                               " 'me:1:a', 60)").fetchone()[0]
    gate_close(rt_db, RUNTIME_GATE)
    gate_open(rt_db, RUNTIME_GATE, ttl=1)
    pgtap.lives_ok(as_runtime, BEGIN, params=(epoch, binding(as_runtime)),
                   description="inside the window: the snapshot reads it open")
    time.sleep(1.2)
    pgtap.results_eq(rt_db, "SELECT s.valid_until <= clock_timestamp(),"
                     " s.snapshot ->> %s FROM dot_iu_gate_snapshot AS s", [(True, "true")],
                     params=(RUNTIME_GATE,), description="the cached snapshot is past its validity")
    pgtap.throws_ok(as_runtime, BEGIN, "55000", "gate(s) shut: " + RUNTIME_GATE,
                    params=(epoch, binding(as_runtime)))


# --- the rows a runtime keeps --------------------------------------------------------------------

def test_a_runtime_reads_a_catalog_row_once_and_then_applies_in_one_transaction(rt, rt_db):
    for _ in range(3):
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    assert rt.executor.transactions == [
        "resolve", "take+apply+release", "take+apply+release", "take+apply+release"]
    assert [r["run_status"] for r in runs(rt_db)] == ["applied"] * 3
    # each apply took the lease (a new epoch) and gave it back in its own transaction
    assert [r["evidence"]["epoch"] for r in runs(rt_db)] == [1, 2, 3]
    assert lease(rt_db)[:2] == (3, False)


def test_a_kept_row_whose_binding_changed_is_read_again_and_applied_once(rt, rt_db):
    assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    rt_db.execute("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
                  " WHERE command_name = 'dot_iu_healthcheck'")
    rt.executor.transactions.clear()
    result = rt.apply("dot_iu_healthcheck", {}, "alice")
    assert result.status == "applied", result
    assert rt.executor.transactions == ["take+apply+release", "resolve+gates",
                                        "take+apply+release"]
    assert [r["run_status"] for r in runs(rt_db)] == ["applied", "applied"]
    assert calls(rt_db) == ["fn_iu_collection_healthcheck"] * 2
    assert lease(rt_db)[1] is False


def test_a_target_re_created_with_other_argument_names_is_bound_by_its_new_names(rt, rt_db):
    gate_open(rt_db, COMPOSER_GATE)
    assert rt.apply("dot_iu_add_piece", ADD, "alice").status == "applied"
    rt_db.execute(SWAPPED_ADD_PIECE)
    result = rt.apply("dot_iu_add_piece", ADD, "alice")
    assert result.status == "applied", result
    # each value went to the argument of its name, not to the position the old names gave it
    assert result.rows == [{"fn_iu_collection_add_piece": {"piece": P, "collection": C}}]


def test_a_kept_row_whose_target_is_gone_is_refused_as_not_resolving(rt, rt_db):
    assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    rt_db.execute("DROP FUNCTION public.fn_iu_collection_healthcheck()")
    result = rt.apply("dot_iu_healthcheck", {}, "alice")
    assert result.status == "refused", result
    last = runs(rt_db)[-1]
    assert (last["run_status"], last["evidence"]["reason"]) == ("refused", "catalog")
    assert lease(rt_db)[1] is False


def test_an_apply_refused_before_its_transaction_takes_no_lease(rt, rt_db):
    result = rt.apply("dot_iu_add_piece", {"collection_id": C}, "alice")  # parameters missing
    assert result.status == "refused"
    assert rt.executor.transactions == ["resolve", "record"]
    assert runs(rt_db)[-1]["evidence"]["reason"] == "parameters"
    assert lease(rt_db) is None  # never taken: the lease row was not even created


def test_a_shut_gate_is_refused_before_any_command_sql_and_audited_with_the_gate(rt, rt_db):
    result = rt.apply("dot_iu_add_piece", ADD, "alice")  # the composer gate is shut
    assert result.status == "refused" and calls(rt_db) == []
    assert rt.executor.transactions == ["resolve", "take+apply+release", "resolve+gates",
                                        "record"]
    last = runs(rt_db)[-1]
    assert (last["evidence"]["reason"], last["evidence"]["shut_gates"],
            last["evidence"]["statements"]) == ("gate_shut", [COMPOSER_GATE], 0)
    assert lease(rt_db) is None  # taken in the transaction that rolled back


# --- holding the lease -------------------------------------------------------------------------

def test_holding_the_lease_makes_each_apply_one_transaction_under_one_epoch(rt, rt_db):
    with rt.holding_lease():
        for _ in range(3):
            assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
            assert lease(rt_db)[:2] == (1, True)  # held between applies
    assert rt.executor.transactions == ["resolve", "take+apply", "apply", "apply", "release"]
    assert [r["evidence"]["epoch"] for r in runs(rt_db)] == [1, 1, 1]
    assert lease(rt_db)[:2] == (1, False)


def test_while_one_runtime_holds_the_lease_another_is_refused_and_audited(
        pg, login, db_name, rt, rt_db):
    other = runtime(pg, login, db_name)
    with rt.holding_lease():
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
        refused = other.apply("dot_iu_healthcheck", {}, "bob")
        assert (refused.status, refused.message) == (
            "refused", "lease operator_runtime is held by another runtime")
    assert runs(rt_db)[-1]["evidence"]["reason"] == "lease_held"
    assert other.apply("dot_iu_healthcheck", {}, "bob").status == "applied"
    other.executor.close()


def test_holding_the_lease_does_not_nest(rt):
    with rt.holding_lease(), pytest.raises(RuntimeError, match="already holds"):
        with rt.holding_lease():
            pass


def test_a_shut_gate_while_holding_is_refused_and_the_lease_kept(rt, rt_db):
    with rt.holding_lease():
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
        gate_close(rt_db, RUNTIME_GATE)
        refused = rt.apply("dot_iu_healthcheck", {}, "alice")
        assert (refused.status, runs(rt_db)[-1]["evidence"]["shut_gates"]) == (
            "refused", [RUNTIME_GATE])
        assert lease(rt_db)[:2] == (1, True)
        gate_open(rt_db, RUNTIME_GATE)
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    assert [r["evidence"]["epoch"] for r in runs(rt_db)] == [1, 1, 1]


def test_a_lease_broken_while_holding_refuses_one_apply_then_is_taken_again(rt, rt_db):
    with rt.holding_lease():
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
        rt_db.execute("SELECT fn_dot_iu_runtime_lease_break('operator_runtime', 'ops@test',"
                      " 'stuck runtime')")
        refused = rt.apply("dot_iu_healthcheck", {}, "alice")
        assert (refused.status, refused.sqlstate) == ("refused", "55000")
        assert runs(rt_db, "dot_iu_healthcheck")[-1]["evidence"]["step"] == "apply_begin"
        assert calls(rt_db) == ["fn_iu_collection_healthcheck"]
        again = rt.apply("dot_iu_healthcheck", {}, "alice")
        assert again.status == "applied", again
        assert lease(rt_db)[:2] == (2, True)


def test_holding_takes_the_lease_again_once_half_its_ttl_has_passed(pg, login, db_name, rt_db):
    rt = runtime(pg, login, db_name, lease_ttl=2)
    rt.executor = Counted(rt.executor)
    with rt.holding_lease():
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
        first_expiry = lease(rt_db)[2]
        time.sleep(1.1)
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
        epoch, held, expiry = lease(rt_db)
        assert (epoch, held) == (1, True) and expiry > first_expiry
    assert rt.executor.transactions == ["resolve", "take+apply", "take+apply", "release"]
    rt.executor.close()


# --- the executor after errors -----------------------------------------------------------------

def test_failed_transactions_after_prepared_statements_leave_the_executor_usable(
        pg, login, db_name, rt_db, caplog):
    """psycopg prepares a statement it has run five times; transactions cut short by an error
    must not leave it naming statements the server does not have, nor log warnings."""
    run = executor(pg, login, db_name)
    divide = "SELECT 1 / %s::integer AS c"
    good = [Statement(divide, ("1",)), Statement("SELECT %s::text AS a", ("x",))]
    bad = [Statement(divide, ("0",)), Statement("SELECT %s::text AS a", ("x",))]
    other = [Statement("SELECT 2 AS b")]
    with caplog.at_level(logging.WARNING, logger="psycopg"):
        for _ in range(4):
            for _ in range(6):
                assert run.run(good) == [[{"c": 1}], [{"a": "x"}]]
            for _ in range(3):  # a statement prepared by now fails, twice in a row
                with pytest.raises(DatabaseError) as error:
                    run.run(bad)
                assert (error.value.sqlstate, error.value.step) == ("22012", 0)
                assert run.run(other) == [[{"b": 2}]]
            assert run.run(good) == [[{"c": 1}], [{"a": "x"}]]
    run.close()
    assert caplog.records == []


def test_many_refusals_in_a_row_are_each_recorded_and_the_runtime_then_applies(rt, rt_db):
    """Each refusal here rolls back a pipelined transaction whose BEGIN and COMMIT psycopg has
    prepared by then: a dozen in a row once left its cache naming a statement the server had
    dropped, and every later transaction failed with 26000."""
    assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    gate_close(rt_db, RUNTIME_GATE)
    for _ in range(12):
        result = rt.apply("dot_iu_healthcheck", {}, "alice")
        assert (result.status, result.sqlstate) == ("refused", None), result
        assert result.run_id is not None, result.message
    gate_open(rt_db, RUNTIME_GATE)
    assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    assert [r["run_status"] for r in runs(rt_db)] == ["applied", *["refused"] * 12, "applied"]


def test_two_runtimes_applying_at_once_apply_one_after_the_other(pg, login, db_name, rt_db):
    """Without holding_lease, each apply takes the lease in its own transaction: the second
    runtime's acquire waits for the first apply to commit, then takes the lease it gave back."""
    rt_db.execute("""
CREATE OR REPLACE FUNCTION public.fn_iu_collection_healthcheck() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $standin$
BEGIN
  PERFORM pg_catalog.pg_sleep(0.4);
  RETURN pg_catalog.jsonb_build_object('at', pg_catalog.clock_timestamp());
END
$standin$;
""")
    first, second = runtime(pg, login, db_name), runtime(pg, login, db_name)
    results = {}

    def apply(name, made):
        results[name] = made.apply("dot_iu_healthcheck", {}, name)

    threads = [threading.Thread(target=apply, args=(name, made))
               for name, made in (("alice", first), ("bob", second))]
    for thread in threads:
        thread.start()
        time.sleep(0.1)  # bob starts while alice's apply holds the lease row
    for thread in threads:
        thread.join()
    assert {name: result.status for name, result in results.items()} == {
        "alice": "applied", "bob": "applied"}
    rows = runs(rt_db)
    assert sorted(r["evidence"]["epoch"] for r in rows) == [1, 2]
    # bob's command ran only after alice's transaction had ended: 0.4 s apart, not 0.1
    at = {name: datetime.fromisoformat(r.rows[0]["fn_iu_collection_healthcheck"]["at"])
          for name, r in results.items()}
    assert (at["bob"] - at["alice"]).total_seconds() >= 0.35
    assert lease(rt_db)[:2] == (2, False)
    first.executor.close()
    second.executor.close()


def test_a_block_that_ends_after_a_refusal_still_gives_the_lease_back(rt, rt_db):
    with rt.holding_lease():
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
        gate_close(rt_db, RUNTIME_GATE)
        assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "refused"
        assert lease(rt_db)[:2] == (1, True)
    assert lease(rt_db)[:2] == (1, False)  # not left to its TTL


def test_a_plan_prepared_after_the_catalog_changed_applies_on_the_fresh_row(rt, rt_db):
    assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"  # the row is kept
    rt_db.execute("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
                  " WHERE command_name = 'dot_iu_healthcheck'")
    other = runtime_for(rt)
    prepared = other.prepare("dot_iu_healthcheck", {})
    result = rt.apply(prepared, None, "alice")
    assert result.status == "applied", result
    other.executor.close()


def test_a_lock_timeout_in_apply_begin_is_refused_as_such_and_audited(
        pg, login, db_name, rt_db, other_session):
    slow = runtime(pg, login, db_name, executor_options={"lock_timeout": "300ms"})
    assert slow.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    with other_session.transaction():  # a catalog change in flight holds the row
        other_session.execute("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
                              " WHERE command_name = 'dot_iu_healthcheck'")
        result = slow.apply("dot_iu_healthcheck", {}, "alice")
    assert (result.status, result.sqlstate) == ("refused", "55P03"), result
    evidence = runs(rt_db)[-1]["evidence"]
    assert (evidence["reason"], evidence["step"], evidence["statements"]) == (
        "lock_timeout", "apply_begin", 0)
    assert calls(rt_db) == ["fn_iu_collection_healthcheck"]
    slow.executor.close()
