"""Plan-bound applies, the runtime lease and the database's own gate rule (SPEC 3.8), as a real
login of dot_iu_runtime: a plan applies once, fresh, for its own call and catalog row; one
applier at a time, fenced by the lease's epoch; the logger refuses an applied row while a
needed gate is shut, whoever calls it."""

from __future__ import annotations

import threading
import time
import uuid

import pgtap
import psycopg
import pytest
from runtime_helpers import (
    COMPOSER_GATE,
    RUNTIME_GATE,
    calls,
    create_login,
    drop_login,
    gate_close,
    gate_open,
    login_conninfo,
    prepare_db,
    runs,
    runtime,
)

C = "6f1c0b7e-8d56-4d3e-9d7e-111111111111"
OTHER = "6f1c0b7e-8d56-4d3e-9d7e-333333333333"
SLOW_HEALTHCHECK = """
CREATE OR REPLACE FUNCTION public.fn_iu_collection_healthcheck() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $standin$
BEGIN
  PERFORM pg_catalog.pg_sleep(0.3);
  INSERT INTO public.rt_test_standin_call (fn) VALUES ('fn_iu_collection_healthcheck');
  RETURN '{"healthy": true}'::jsonb;
END
$standin$;
"""
LOG = "SELECT public.fn_dot_iu_command_log(%s, 'apply', 'applied', 'alice', %s, '{}'::jsonb)"
DIGEST = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def login(pg):
    made = create_login(pg)
    yield made
    drop_login(pg, made)


@pytest.fixture
def rt_db(db):
    prepare_db(db)
    return db


@pytest.fixture
def rt(pg, login, db_name, rt_db):
    made = runtime(pg, login, db_name)
    yield made
    made.executor.close()


@pytest.fixture
def as_runtime(pg, login, db_name, rt_db):
    """A plain connection of the runtime login (autocommit), for calling functions directly."""
    with psycopg.connect(login_conninfo(pg, login, db_name), autocommit=True) as conn:
        yield conn


def statuses(conn, command="dot_iu_healthcheck") -> list[tuple[str, str]]:
    return [(r["run_mode"], r["run_status"]) for r in runs(conn, command)]


# --- plan-bound apply -------------------------------------------------------------------------

def test_a_plan_bound_apply_applies_once_and_joins_the_plans_correlation(rt, rt_db):
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    applied = rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=planned.run_id)
    assert applied.status == "applied"
    row = runs(rt_db)[-1]
    assert (row["plan_run_id"], row["correlation_id"]) == (planned.run_id,
                                                           planned.correlation_id)
    pgtap.results_eq(rt_db, "SELECT plan_run_id, applied_run_id FROM dot_iu_command_plan_use",
                     [(planned.run_id, applied.run_id)])

    again = rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=planned.run_id)
    assert (again.status, again.sqlstate) == ("refused", "23505")
    assert calls(rt_db) == ["fn_iu_collection_healthcheck"]
    assert statuses(rt_db) == [("plan", "planned"), ("apply", "applied"), ("apply", "refused")]
    # Refused by the plan check, the apply's first statement: no command SQL ran (0019); the
    # row still joins the plan's chain, though the check returned no correlation (0020).
    refused = runs(rt_db)[-1]
    assert (refused["evidence"]["step"], refused["evidence"]["statements"],
            refused["evidence"]["reason"]) == ("plan_check", 0, "plan")
    assert (refused["plan_run_id"], refused["correlation_id"]) == (planned.run_id,
                                                                   planned.correlation_id)


def test_a_plan_is_refused_once_its_catalog_row_changed(rt, rt_db):
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    rt_db.execute("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
                  " WHERE command_name = 'dot_iu_healthcheck'")
    result = rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=planned.run_id)
    assert (result.status, result.sqlstate) == ("refused", "55000")
    assert "changed since plan" in result.message
    assert calls(rt_db) == []


def test_a_plan_is_refused_for_other_parameters_or_another_command(rt, rt_db):
    planned = rt.plan("dot_iu_validate_collection", {"collection_id": C}, "alice")
    other = rt.apply("dot_iu_validate_collection", {"collection_id": OTHER}, "alice",
                     plan_run_id=planned.run_id)
    assert (other.status, other.sqlstate) == ("refused", "22023")
    health = rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=planned.run_id)
    assert (health.status, health.sqlstate) == ("refused", "22023")
    not_a_plan = rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=health.run_id)
    assert (not_a_plan.status, not_a_plan.sqlstate) == ("refused", "22023")
    assert calls(rt_db) == []
    same = rt.apply("dot_iu_validate_collection", {"collection_id": C.upper()}, "alice",
                    plan_run_id=planned.run_id)
    assert same.status == "applied"  # the same value, spelt otherwise: the same digest


PROBED = """
CREATE SEQUENCE public.rt_probe;
CREATE OR REPLACE FUNCTION public.fn_iu_collection_healthcheck() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $standin$
BEGIN
  RETURN pg_catalog.jsonb_build_object('probe', pg_catalog.nextval('public.rt_probe'));
END
$standin$;
CREATE OR REPLACE FUNCTION public.fn_iu_collection_validate(p_collection_id uuid) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $standin$
BEGIN
  RETURN pg_catalog.jsonb_build_object('probe', pg_catalog.nextval('public.rt_probe'));
END
$standin$;
"""


def probes(conn) -> int:
    """How many times a probed target ran, committed or not (a sequence is not rolled back)."""
    last, called = conn.execute("SELECT last_value, is_called FROM public.rt_probe").fetchone()
    return last if called else 0


def test_a_plan_the_ledger_would_refuse_runs_no_command_sql(rt, rt_db):
    """The plan check is the apply's first statement: a used plan, another parameter, an old
    plan or a changed catalog row is refused before the target runs even once (a rolled-back
    call would still have drawn a number from the sequence)."""
    rt_db.execute(PROBED)
    used = rt.plan("dot_iu_healthcheck", {}, "alice")
    assert rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=used.run_id).ok
    assert probes(rt_db) == 1
    validate = rt.plan("dot_iu_validate_collection", {"collection_id": C}, "alice")
    refusals = [
        rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=used.run_id),
        rt.apply("dot_iu_validate_collection", {"collection_id": OTHER}, "alice",
                 plan_run_id=validate.run_id),
        rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=validate.run_id),
    ]
    assert [(r.status, r.sqlstate) for r in refusals] == [
        ("refused", "23505"), ("refused", "22023"), ("refused", "22023")]
    for row in runs(rt_db)[-3:]:
        assert (row["evidence"]["step"], row["evidence"]["statements"]) == ("plan_check", 0)
    assert probes(rt_db) == 1
    assert rt.apply("dot_iu_validate_collection", {"collection_id": C}, "alice",
                    plan_run_id=validate.run_id).correlation_id == validate.correlation_id
    assert probes(rt_db) == 2


@pytest.mark.parametrize("case", ["no such run", "not a plan", "another command",
                                  "other parameters", "used", "catalog changed", "old"])
def test_the_plan_check_refuses_what_the_logger_refuses(rt, rt_db, as_runtime, case):
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    check = "SELECT public.fn_dot_iu_command_plan_check(%s, %s, %s)"
    assert as_runtime.execute(check, (planned.run_id, "dot_iu_healthcheck",
                                      planned.params_digest)).fetchone()[0] == \
        uuid.UUID(planned.correlation_id)
    run_id, command, digest = planned.run_id, "dot_iu_healthcheck", planned.params_digest
    expected = "22023"
    if case == "no such run":
        run_id = 10**15
    elif case == "not a plan":
        run_id = rt.verify("dot_iu_healthcheck", {}, "alice").run_id
    elif case == "another command":
        command = "dot_iu_validate_collection"
    elif case == "other parameters":
        digest = DIGEST
    elif case == "used":
        assert rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=planned.run_id).ok
        expected = "23505"
    elif case == "catalog changed":
        rt_db.execute("UPDATE dot_iu_command_catalog SET reversible = NOT reversible"
                      " WHERE command_name = 'dot_iu_healthcheck'")
        expected = "55000"
    else:
        run_id = rt_db.execute(
            "INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating,"
            " actor, params_digest, gate_snapshot, evidence, session_login, correlation_id,"
            " created_at) SELECT command_name, run_mode, run_status, mutating, actor,"
            " params_digest, gate_snapshot, evidence, session_login, correlation_id,"
            " created_at - interval '2 hours' FROM dot_iu_command_run WHERE run_id = %s"
            " RETURNING run_id", (planned.run_id,)).fetchone()[0]
        expected = "55000"
    with pytest.raises(psycopg.Error) as refused:
        as_runtime.execute(check, (run_id, command, digest))
    assert refused.value.sqlstate == expected


ROW = ("SELECT public.fn_dot_iu_command_log(%s, 'apply', %s, 'alice', %s, %s::jsonb)")
OWN = "6f1c0b7e-8d56-4d3e-9d7e-444444444444"


@pytest.mark.parametrize(("command", "status", "evidence", "joins"), [
    ("dot_iu_healthcheck", "refused", {"reason": "plan"}, True),
    ("dot_iu_healthcheck", "failed", {"sqlstate": "P0001"}, True),
    ("dot_iu_healthcheck", "refused", {"correlation_id": OWN}, False),
    ("dot_iu_add_piece", "refused", {}, False),
], ids=["refused", "failed", "its own correlation", "another command"])
def test_a_row_naming_a_plan_of_its_command_records_the_plans_correlation(
        rt, rt_db, as_runtime, command, status, evidence, joins):
    """Written straight through the logger as the runtime login: a refused or failed apply
    row naming a plan of its own command, without a correlation of its own, records the plan's
    correlation (0020); one that names its own keeps it; a row of another command naming the
    plan stays outside the chain."""
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    run_id = as_runtime.execute(ROW, (command, status, DIGEST, psycopg.types.json.Jsonb(
        {**evidence, "plan_run_id": planned.run_id}))).fetchone()[0]
    row = next(r for r in runs(rt_db) if r["run_id"] == run_id)
    assert row["plan_run_id"] == planned.run_id
    want = planned.correlation_id if joins else evidence.get("correlation_id")
    assert row["correlation_id"] == want


def test_a_row_naming_a_run_that_is_no_plan_joins_no_chain(rt, rt_db, as_runtime):
    """Only a plan's correlation is copied: a row naming a verify row records that run id in
    plan_run_id and no correlation; one naming a run id that does not exist records neither."""
    verified = rt.verify("dot_iu_healthcheck", {}, "alice")
    for named in (verified.run_id, 10**15):
        run_id = as_runtime.execute(ROW, ("dot_iu_healthcheck", "refused", DIGEST,
                                          psycopg.types.json.Jsonb({"plan_run_id": named}))
                                    ).fetchone()[0]
        row = next(r for r in runs(rt_db) if r["run_id"] == run_id)
        assert (row["plan_run_id"], row["correlation_id"]) == (
            verified.run_id if named == verified.run_id else None, None)


def test_an_applied_row_naming_another_correlation_than_its_plans_is_refused(rt, rt_db,
                                                                            as_runtime):
    """Unchanged by the copying: an applied row's own correlation must be its plan's (22023),
    and nothing is written."""
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    before = len(runs(rt_db))
    with pytest.raises(psycopg.Error) as refused:
        as_runtime.execute(ROW, ("dot_iu_healthcheck", "applied", planned.params_digest,
                                 psycopg.types.json.Jsonb({"plan_run_id": planned.run_id,
                                                           "correlation_id": OWN})))
    assert refused.value.sqlstate == "22023"
    assert "belongs to correlation" in str(refused.value)
    assert len(runs(rt_db)) == before


def test_a_plan_older_than_an_hour_is_refused(rt, rt_db):
    """The ledger is append-only, so a plan cannot be backdated; a copy of a real plan row with
    created_at two hours back is inserted directly (as the superuser, as a restore would)."""
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    old = rt_db.execute(
        "INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating, actor,"
        " params_digest, gate_snapshot, evidence, session_login, correlation_id, created_at)"
        " SELECT command_name, run_mode, run_status, mutating, actor, params_digest,"
        " gate_snapshot, evidence, session_login, correlation_id,"
        " created_at - interval '2 hours' FROM dot_iu_command_run WHERE run_id = %s"
        " RETURNING run_id", (planned.run_id,)).fetchone()[0]
    result = rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=old)
    assert (result.status, result.sqlstate) == ("refused", "55000")
    assert "more than an hour ago" in result.message
    assert rt.apply("dot_iu_healthcheck", {}, "alice",
                    plan_run_id=planned.run_id).status == "applied"


def test_two_racing_applies_of_one_plan_exactly_one_wins(pg, login, db_name, rt, rt_db):
    rt_db.execute(SLOW_HEALTHCHECK)
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    # Two runtimes on two connections and two leases, so only the plan can stop one of them.
    racers = [runtime(pg, login, db_name, lease=f"race_{n}") for n in (1, 2)]
    barrier, results = threading.Barrier(2), [None, None]

    def race(n):
        barrier.wait()
        results[n] = racers[n].apply("dot_iu_healthcheck", {}, "alice",
                                     plan_run_id=planned.run_id)

    threads = [threading.Thread(target=race, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for racer in racers:
        racer.executor.close()
    assert sorted((r.status, r.sqlstate) for r in results) == [("applied", None),
                                                               ("refused", "23505")]
    assert calls(rt_db) == ["fn_iu_collection_healthcheck"]
    assert sorted(statuses(rt_db)) == [("apply", "applied"), ("apply", "refused"),
                                       ("plan", "planned")]


# --- the lease ----------------------------------------------------------------------------------

def test_an_apply_is_refused_while_another_live_holder_holds_the_lease(rt, rt_db, as_runtime):
    epoch = as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                               " 'other:1:x', 60)").fetchone()[0]
    assert epoch == 1
    result = rt.apply("dot_iu_healthcheck", {}, "alice")
    assert (result.status, result.sqlstate) == ("refused", None)
    assert "held by another runtime" in result.message
    assert runs(rt_db)[-1]["evidence"] == {"mode": "apply", "reason": "lease_held",
                                           "statements": 0, "lease": "operator_runtime",
                                           "correlation_id": result.correlation_id}
    assert calls(rt_db) == []
    pgtap.results_eq(rt_db, "SELECT holder, epoch, held FROM v_dot_iu_runtime_lease",
                     [("other:1:x", 1, True)], description="the other holder keeps the lease")


class Paused:
    """The runtime's real executor, pausing once, when armed, before an apply transaction that
    names a kept epoch: the lease runs out (and ``meanwhile`` runs) between the runtime's look
    at its own clock and the apply reaching the database, as when its process is frozen."""

    def __init__(self, inner, seconds, meanwhile=None):
        self.inner, self.seconds, self.meanwhile = inner, seconds, meanwhile
        self.armed = False

    def run(self, statements, *, read_only=False):
        first = statements[0].sql if statements else ""
        if self.armed and "apply_begin" in first and "lease_acquire" not in first:
            self.armed = False
            time.sleep(self.seconds)
            if self.meanwhile:
                self.meanwhile()
        return self.inner.run(statements, read_only=read_only)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("taken_over", [False, True])
def test_a_holder_whose_lease_expired_cannot_commit(pg, login, db_name, rt_db, rt, taken_over):
    def take_over():
        assert rt.apply("dot_iu_healthcheck", {}, "bob").status == "applied"

    slow = runtime(pg, login, db_name, lease_ttl=2)
    slow.executor = paused = Paused(slow.executor, 2.2, take_over if taken_over else None)
    with slow.holding_lease():
        assert slow.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
        paused.armed = True
        result = slow.apply("dot_iu_healthcheck", {}, "alice")
    slow.executor.close()
    assert (result.status, result.sqlstate) == ("refused", "55000")
    assert "is not held by" in result.message
    last = runs(rt_db)[-1]
    assert (last["actor"], last["evidence"]["step"], last["evidence"]["epoch"]) == (
        "alice", "apply_begin", 1)
    assert calls(rt_db) == ["fn_iu_collection_healthcheck"] * (2 if taken_over else 1)


def test_renew_or_release_by_a_non_holder_changes_nothing(as_runtime):
    as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime', 'me:1:a', 60)")
    before = as_runtime.execute("SELECT * FROM v_dot_iu_runtime_lease").fetchall()
    for sql in ("SELECT fn_dot_iu_runtime_lease_renew('operator_runtime', 'you:2:b', 1, 600)",
                "SELECT fn_dot_iu_runtime_lease_renew('operator_runtime', 'me:1:a', 2, 600)",
                "SELECT fn_dot_iu_runtime_lease_release('operator_runtime', 'you:2:b', 1)"):
        pgtap.results_eq(as_runtime, sql, [(False,)])
    assert as_runtime.execute("SELECT * FROM v_dot_iu_runtime_lease").fetchall() == before


def test_two_runtimes_on_one_host_are_distinct_holders(pg, login, db_name, rt, rt_db,
                                                      as_runtime):
    other = runtime(pg, login, db_name)
    assert rt.holder != other.holder
    assert rt.holder.split(":")[:2] == other.holder.split(":")[:2]  # same host, same process
    as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime', %s, 60)",
                       (other.holder,))  # the other runtime between its acquire and release
    assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "refused"
    as_runtime.execute("SELECT fn_dot_iu_runtime_lease_release('operator_runtime', %s, 1)",
                       (other.holder,))
    assert rt.apply("dot_iu_healthcheck", {}, "alice").status == "applied"
    pgtap.results_eq(rt_db, "SELECT holder, epoch, held FROM v_dot_iu_runtime_lease",
                     [(rt.holder, 2, False)])
    other.executor.close()


def test_the_lease_is_released_after_every_apply_whatever_happened(rt, rt_db):
    rt.apply("dot_iu_healthcheck", {}, "alice")                                  # applied
    rt.apply("dot_iu_add_piece", {"collection_id": C, "piece_id": C, "position": 1},
             "alice")                                                            # gate shut
    rt_db.execute("CREATE OR REPLACE FUNCTION public.fn_iu_collection_healthcheck() RETURNS"
                  " jsonb LANGUAGE sql AS $f$ SELECT (1 / 0)::text::jsonb $f$")
    rt.apply("dot_iu_healthcheck", {}, "alice")                                  # failed
    assert statuses(rt_db) == [("apply", "applied"), ("apply", "failed")]
    # One epoch: every apply takes the lease inside its own transaction; the refused and the
    # failed ones rolled back, their taking of the lease with them.
    pgtap.results_eq(rt_db, "SELECT epoch, held FROM v_dot_iu_runtime_lease", [(1, False)])


# --- the database's own gate rule ---------------------------------------------------------------

def test_the_logger_refuses_an_applied_row_while_a_needed_gate_is_shut(as_runtime, rt_db):
    pgtap.throws_ok(as_runtime, LOG, "55000", "needs its gates open; shut: "
                    "iu_core.composer_enabled", params=("dot_iu_add_piece", DIGEST))
    gate_close(rt_db, RUNTIME_GATE)
    pgtap.throws_ok(as_runtime, LOG, "55000", "shut: iu_core.operator_runtime_enabled",
                    params=("dot_iu_healthcheck", DIGEST))
    assert runs(rt_db) == []
    for status in ("refused", "failed"):  # refusals stay recordable while every gate is shut
        pgtap.lives_ok(as_runtime, LOG.replace("'applied'", f"'{status}'"),
                       params=("dot_iu_add_piece", DIGEST))
    assert len(runs(rt_db)) == 2



DELIVERY_GATE = "iu_core.delivery_enabled"


@pytest.mark.parametrize("kept", ["cached", "afresh"])
def test_the_gate_rule_needs_the_runtime_gate_and_every_required_gate(as_runtime, rt_db, kept):
    """One containment over the snapshot's open_gates on the cached path, the readings afresh
    past valid_until: both refuse until every gate the row needs reads open."""
    rt_db.execute("UPDATE dot_iu_command_catalog SET required_gates = %s"
                  " WHERE command_name = 'dot_iu_add_piece'", ([COMPOSER_GATE, DELIVERY_GATE],))

    def log():
        if kept == "afresh":  # the cached snapshot no longer valid: the logger reads afresh
            rt_db.execute("UPDATE dot_iu_gate_snapshot SET valid_until = '-infinity'")
        return as_runtime.execute(LOG, ("dot_iu_add_piece", DIGEST))

    pgtap.throws_ok(as_runtime, LOG, "55000", f"shut: {COMPOSER_GATE}, {DELIVERY_GATE}",
                    params=("dot_iu_add_piece", DIGEST))
    gate_open(rt_db, COMPOSER_GATE)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as refused:
        log()
    assert refused.value.diag.message_primary.endswith(f"shut: {DELIVERY_GATE}")
    gate_open(rt_db, DELIVERY_GATE)
    gate_close(rt_db, RUNTIME_GATE)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as refused:
        log()
    assert refused.value.diag.message_primary.endswith(f"shut: {RUNTIME_GATE}")
    assert runs(rt_db, "dot_iu_add_piece") == []
    gate_open(rt_db, RUNTIME_GATE)
    run_id = log().fetchone()[0]
    status, snapshot = rt_db.execute("SELECT run_status, gate_snapshot FROM dot_iu_command_run"
                                     " WHERE run_id = %s", (run_id,)).fetchone()
    assert status == "applied"
    assert {snapshot[gate] for gate in (RUNTIME_GATE, COMPOSER_GATE, DELIVERY_GATE)} == {"true"}
    # Which path wrote it: the cached path reads the catalog once (its INSERT ... SELECT, where
    # the containment decides), the readings afresh twice (that INSERT wrote nothing, then the
    # row is read again). Without this a containment that never matched would pass unnoticed:
    # the slow path writes the same row.
    with rt_db.transaction(force_rollback=True):
        reads = ("SELECT seq_scan + idx_scan FROM pg_stat_xact_user_tables"
                 " WHERE relid = 'dot_iu_command_catalog'::regclass")
        before = rt_db.execute(reads).fetchone()[0]
        if kept == "afresh":
            rt_db.execute("UPDATE dot_iu_gate_snapshot SET valid_until = '-infinity'")
        rt_db.execute(LOG, ("dot_iu_add_piece", DIGEST))
        assert rt_db.execute(reads).fetchone()[0] - before == {"cached": 1, "afresh": 2}[kept]


def test_apply_begin_refuses_a_shut_gate_even_when_the_caller_skips_the_runtime(as_runtime):
    epoch = as_runtime.execute("SELECT fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                               " 'direct:1:x', 60)").fetchone()[0]
    pgtap.throws_ok(as_runtime, "SELECT fn_dot_iu_runtime_apply_begin('dot_iu_add_piece',"
                    " 'operator_runtime', 'direct:1:x', %s)", "55000", COMPOSER_GATE,
                    params=(epoch,))

