"""The operator runtime's modes against a real database, as a real login of dot_iu_runtime
(SPEC 3.8): plan runs no command SQL, apply is gated and atomic, a fault is recorded as failed,
verify is read-only, unsafe statements and bad parameters are refused and audited, the seed
proof, and no parameter value in any durable row."""

from __future__ import annotations

import dataclasses
import json

import pgtap
import pytest
from runtime_helpers import (
    COMPOSER_GATE,
    RUNTIME_GATE,
    calls,
    create_login,
    drop_login,
    gate_close,
    gate_open,
    install_standins,
    prepare_db,
    project_required_gates,
    registry,
    runs,
    runtime,
)

from substrate.runtime import ExecutorUnavailable, OperatorRuntime, psycopg_executor

C = "6f1c0b7e-8d56-4d3e-9d7e-111111111111"
P = "6f1c0b7e-8d56-4d3e-9d7e-222222222222"
ADD = {"collection_id": C, "piece_id": P, "position": 3}
FAILING_ADD_PIECE = """
CREATE OR REPLACE FUNCTION public.fn_iu_collection_add_piece(p_collection_id uuid,
    p_piece_id uuid, p_position integer)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  INSERT INTO public.rt_test_standin_call (fn) VALUES ('fn_iu_collection_add_piece');
  RAISE EXCEPTION 'piece % cannot go to position %', p_piece_id, p_position
      USING ERRCODE = '22012';
END
$standin$;
"""
WRITING_VALIDATE = """
CREATE OR REPLACE FUNCTION public.fn_iu_collection_validate(p_collection_id uuid)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  INSERT INTO public.rt_test_standin_call (fn) VALUES ('fn_iu_collection_validate');
  RETURN '{}'::jsonb;
END
$standin$;
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


@pytest.fixture
def rt(pg, login, db_name, rt_db):
    made = runtime(pg, login, db_name)
    yield made
    made.executor.close()


def only_run(conn, command=None) -> dict:
    rows = runs(conn, command)
    assert len(rows) == 1, rows
    return rows[0]


# --- plan -------------------------------------------------------------------------------------

def test_plan_records_a_planned_row_and_never_runs_command_sql(pg, login, db_name, db):
    install_standins(db)  # every target raises 0A000 when called
    project_required_gates(db)
    planner = runtime(pg, login, db_name)
    result = planner.plan("dot_iu_add_piece", ADD, "alice")
    assert (result.status, result.rows) == ("planned", [])
    row = only_run(db)
    assert (row["run_mode"], row["run_status"], row["run_id"]) == ("plan", "planned",
                                                                  result.run_id)
    assert row["params_digest"] == result.params_digest
    assert row["correlation_id"] == result.correlation_id
    evidence = row["evidence"]
    assert evidence["gates_needed"] == [RUNTIME_GATE, COMPOSER_GATE]
    assert evidence["shut_gates"] == [RUNTIME_GATE, COMPOSER_GATE]
    assert evidence["statements"] == 0 and len(evidence["catalog_md5"]) == 32
    assert row["session_login"] == login.name


def test_plan_with_answering_stand_ins_calls_none_of_them(rt, rt_db):
    assert rt.plan("dot_iu_add_piece", ADD, "alice").status == "planned"
    assert rt.plan("dot_iu_healthcheck", {}, "alice").status == "planned"
    assert calls(rt_db) == []


# --- apply ------------------------------------------------------------------------------------

def test_apply_with_a_needed_gate_shut_is_refused_before_any_command_sql_and_audited(rt, rt_db):
    result = rt.apply("dot_iu_add_piece", ADD, "alice")  # composer gate shut
    assert (result.status, result.sqlstate) == ("refused", None)
    assert "iu_core.composer_enabled" in result.message
    assert calls(rt_db) == []
    row = only_run(rt_db)
    assert (row["run_mode"], row["run_status"]) == ("apply", "refused")
    assert row["evidence"]["shut_gates"] == [COMPOSER_GATE]
    assert (row["evidence"]["reason"], row["evidence"]["statements"]) == ("gate_shut", 0)

    gate_close(rt_db, RUNTIME_GATE)
    gate_open(rt_db, COMPOSER_GATE)
    result = rt.apply("dot_iu_add_piece", ADD, "alice")
    assert result.status == "refused" and calls(rt_db) == []
    assert runs(rt_db)[-1]["evidence"]["shut_gates"] == [RUNTIME_GATE]


def test_apply_with_gates_open_commits_the_call_and_its_applied_row_together(rt, rt_db):
    gate_open(rt_db, COMPOSER_GATE)
    result = rt.apply("dot_iu_add_piece", ADD, "alice")
    assert result.status == "applied", result
    assert result.rows == [{"fn_iu_collection_add_piece": {
        "fn": "fn_iu_collection_add_piece", "args": [C, P, 3]}}]
    assert calls(rt_db) == ["fn_iu_collection_add_piece"]
    row = only_run(rt_db)
    assert (row["run_id"], row["run_mode"], row["run_status"]) == (result.run_id, "apply",
                                                                  "applied")
    assert row["evidence"] == {"mode": "apply", "statements": 1, "result_rows": 1,
                               "lease": "operator_runtime", "epoch": 1,
                               "correlation_id": result.correlation_id}
    pgtap.results_eq(rt_db, "SELECT held FROM public.v_dot_iu_runtime_lease", [(False,)],
                     description="the lease is released after the apply")


def test_a_fault_in_the_command_rolls_back_the_call_and_records_failed_sqlstate_only(rt, rt_db):
    gate_open(rt_db, COMPOSER_GATE)
    rt_db.execute(FAILING_ADD_PIECE)
    result = rt.apply("dot_iu_add_piece", ADD, "alice")
    assert (result.status, result.sqlstate) == ("failed", "22012")
    assert calls(rt_db) == []  # the stand-in's own write rolled back with the call
    row = only_run(rt_db)
    assert row["run_status"] == "failed"
    assert row["evidence"] == {
        "mode": "apply", "reason": "database", "sqlstate": "22012", "error_class": "22",
        "step": "command", "statements": 1, "lease": "operator_runtime",
        "correlation_id": result.correlation_id,
    }  # no epoch: the lease was taken in the transaction that rolled back
    assert P not in json.dumps(row) and "position" not in json.dumps(row["evidence"])
    pgtap.results_eq(rt_db, "SELECT count(*) FROM public.v_dot_iu_runtime_lease WHERE held",
                     [(0,)])


@pytest.mark.parametrize("sqlstate, status", [("55000", "refused"), ("22023", "refused"),
                                              ("23505", "refused"), ("42501", "refused"),
                                              ("23503", "refused"), ("P0001", "failed"),
                                              ("40001", "failed")])
def test_database_errors_are_refused_for_the_refusal_sqlstates_and_failed_otherwise(
        rt, rt_db, sqlstate, status):
    rt_db.execute(f"""
CREATE OR REPLACE FUNCTION public.fn_iu_collection_healthcheck() RETURNS jsonb
LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'no' USING ERRCODE = '{sqlstate}'; END $f$""")
    result = rt.apply("dot_iu_healthcheck", {}, "alice")
    assert (result.status, result.sqlstate) == (status, sqlstate)
    assert only_run(rt_db)["run_status"] == status


# --- verify -----------------------------------------------------------------------------------

def test_verify_runs_the_healthcheck_read_only_and_records_verified(rt, rt_db):
    result = rt.verify("dot_iu_healthcheck", {}, "alice")
    assert result.status == "verified"
    assert result.rows == [{"fn_iu_collection_healthcheck": {
        "fn": "fn_iu_collection_healthcheck", "args": []}}]
    assert calls(rt_db) == []  # the stand-in records calls only when it may write
    assert only_run(rt_db)["evidence"] == {"mode": "verify", "probe": "healthcheck",
                                           "statements": 1, "result_rows": 1,
                                           "correlation_id": result.correlation_id}


def test_verify_validates_the_collection_when_a_collection_id_is_given(rt, rt_db):
    result = rt.verify("dot_iu_add_piece", ADD, "alice")
    assert result.status == "verified"
    assert result.rows == [{"fn_iu_collection_validate": {"fn": "fn_iu_collection_validate",
                                                          "args": [C]}}]
    assert only_run(rt_db)["evidence"]["probe"] == "validate"


def test_verify_is_read_only_a_write_inside_the_probe_fails(rt, rt_db):
    rt_db.execute(WRITING_VALIDATE)
    result = rt.verify("dot_iu_validate_collection", {"collection_id": C}, "alice")
    assert (result.status, result.sqlstate) == ("failed", "25006")  # read_only_sql_transaction
    assert calls(rt_db) == []
    assert only_run(rt_db)["evidence"]["step"] == "probe"


# --- the seed proof ---------------------------------------------------------------------------

def test_seed_proof_plan_apply_verify_of_healthcheck_and_a_refused_add_piece(rt, rt_db):
    planned = rt.plan("dot_iu_healthcheck", {}, "alice")
    applied = rt.apply("dot_iu_healthcheck", {}, "alice", plan_run_id=planned.run_id,
                       correlation_id=planned.correlation_id)
    verified = rt.verify("dot_iu_healthcheck", {}, "alice",
                         correlation_id=planned.correlation_id)
    refused = rt.apply("dot_iu_add_piece", ADD, "alice")  # composer gate shut
    assert [r.status for r in (planned, applied, verified, refused)] == [
        "planned", "applied", "verified", "refused"]
    assert registry(rt_db, "dot_iu_healthcheck") == (3, 1, 0, 0, "verified")
    assert registry(rt_db, "dot_iu_add_piece") == (1, 0, 1, 0, "refused")
    chain = {row["correlation_id"] for row in runs(rt_db, "dot_iu_healthcheck")}
    assert chain == {planned.correlation_id}


# --- governance and parameters ----------------------------------------------------------------

@pytest.mark.parametrize("statement, kind", [
    ("DELETE FROM public.rt_test_standin_call", "dml"),
    ("DROP TABLE public.rt_test_standin_call", "ddl"),
    ("SELECT public.fn_iu_collection_healthcheck(); DELETE FROM public.rt_test_standin_call",
     "several_statements"),
    ("SELECT public.fn_iu_collection_render(%s::uuid)", "other_call"),
])
def test_an_unsafe_statement_is_refused_before_it_runs_and_audited(rt, rt_db, statement, kind):
    rt_db.execute("INSERT INTO public.rt_test_standin_call (fn) VALUES ('canary')")
    plan = rt.prepare("dot_iu_healthcheck", {})
    tampered = dataclasses.replace(plan, statement=statement)
    result = rt.apply(tampered, None, "alice")
    assert result.status == "refused" and "refused as unsafe" in result.message
    assert calls(rt_db) == ["canary"]
    row = only_run(rt_db)
    assert (row["run_status"], row["evidence"]["reason"], row["evidence"]["kind"]) == (
        "refused", "unsafe_statement", kind)


def test_a_prepared_plan_applies_when_it_still_matches_the_catalog(rt, rt_db):
    plan = rt.prepare("dot_iu_healthcheck")
    assert rt.apply(plan, None, "alice").status == "applied"


@pytest.mark.parametrize("params, missing, ill_typed, unknown", [
    ({"collection_id": C, "piece_id": P}, ["position"], [], 0),
    ({**ADD, "colour": "red"}, [], [], 1),
    ({**ADD, "position": "third"}, [], ["position"], 0),
    ({**ADD, "position": 2**31}, [], ["position"], 0),
    ({**ADD, "piece_id": "not-a-uuid"}, [], ["piece_id"], 0),
])
def test_parameter_problems_are_refused_and_audited_by_name_only(rt, rt_db, params, missing,
                                                                 ill_typed, unknown):
    gate_open(rt_db, COMPOSER_GATE)
    for mode in ("plan", "apply", "verify"):
        result = getattr(rt, mode)("dot_iu_add_piece", params, "alice")
        assert result.status == "refused", (mode, result)
    assert calls(rt_db) == []
    rows = runs(rt_db)
    assert [(r["run_mode"], r["run_status"]) for r in rows] == [
        ("plan", "refused"), ("apply", "refused"), ("verify", "refused")]
    for row in rows:
        evidence = row["evidence"]
        assert (evidence["missing"], evidence["ill_typed"], evidence["unknown"]) == (
            missing, ill_typed, unknown)


def test_the_gate_protocols_own_commands_are_refused_to_the_runtime_and_audited(rt, rt_db):
    params = {"gate": COMPOSER_GATE, "approval_id": "CHG-1", "actor": "alice",
              "reason": "sneaky", "ttl_seconds": 600}
    planned = rt.plan("dot_iu_gate_open", params, "alice")
    applied = rt.apply("dot_iu_gate_open", params, "alice")
    assert [(r.status, r.sqlstate) for r in (planned, applied)] == [("refused", "42501")] * 2
    assert runs(rt_db, "dot_iu_gate_open") == []  # runs() leaves the gate commands out
    pgtap.results_eq(rt_db, "SELECT run_mode, run_status, evidence ->> 'step' FROM"
                     " dot_iu_command_run WHERE command_name = 'dot_iu_gate_open'"
                     " AND session_login <> 'postgres' ORDER BY run_id",
                     [("plan", "refused", "ledger"), ("apply", "refused", "apply_begin")])
    pgtap.results_eq(rt_db, "SELECT reads_open FROM v_dot_iu_gates WHERE gate_key = %s",
                     [(False,)], params=(COMPOSER_GATE,))


def test_an_uncatalogued_command_is_refused_and_the_ledger_declines_to_record_it(rt, rt_db):
    result = rt.plan("dot_iu_not_a_command", {}, "alice")
    assert (result.status, result.run_id) == ("refused", None)
    assert "not recorded: SQLSTATE 23503" in result.message
    assert runs(rt_db) == []


def test_an_invalid_actor_is_refused_and_recorded_under_a_placeholder(rt, rt_db):
    for actor in ("", "   ", "zero\u200bwidth", "x" * 201, "--"):
        result = rt.plan("dot_iu_healthcheck", {}, actor)
        assert result.status == "refused", actor
    rows = runs(rt_db)
    assert {(r["actor"], r["evidence"]["reason"]) for r in rows} == {
        ("(no valid actor given)", "actor")}
    assert len(rows) == 5


def test_reversal_reports_the_inverse_and_a_note_and_runs_nothing(rt, rt_db):
    add = rt.reversal("dot_iu_add_piece")
    assert (add.inverse_command, add.inverse_target) == (
        "dot_iu_remove_piece", "public.fn_iu_collection_remove_piece(uuid, uuid)")
    assert "dot_iu_remove_piece" in add.note
    assert "irreversible" in rt.reversal("dot_iu_route_deliver").note
    assert "read-only" in rt.reversal("dot_iu_healthcheck").note
    assert runs(rt_db) == [] and calls(rt_db) == []


# --- no values in durable rows ----------------------------------------------------------------

SECRET_TEXT = "ZQXJ-route\t'quoted' \"dq\";\nline2"
SECRET_UUIDS = ("dec0ded0-1234-4abc-8def-00000000c0de", "feedface-5678-4abc-8def-0000000beef0")
SECRET_INT, SECRET_BIGINT = 8675309, 9876543210123
SECRET_JSON = {"op": "move", "note": "ZQXJ-json-4242"}
FAILING_ROUTE = """
CREATE OR REPLACE FUNCTION public.fn_iu_route_deliver(p_route_code text)
RETURNS jsonb LANGUAGE plpgsql AS $f$
BEGIN RAISE EXCEPTION 'unknown route %', p_route_code USING ERRCODE = 'P0001'; END $f$;
"""


def package_tables(conn) -> list[str]:
    return [row[0] for row in conn.execute(
        "SELECT pg_catalog.format('%I.%I', 'public', c.relname) FROM pg_catalog.pg_class AS c"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
        " AND pg_catalog.pg_get_userbyid(c.relowner) = 'dot_iu_owner' ORDER BY 1")]


def test_no_raw_parameter_value_appears_in_any_durable_row(rt, rt_db):
    collection, piece = SECRET_UUIDS
    add = {"collection_id": collection, "piece_id": piece, "position": SECRET_INT}
    route = {"route_code": SECRET_TEXT}
    outcomes = [
        rt.plan("dot_iu_add_piece", add, "alice"),
        rt.apply("dot_iu_add_piece", add, "alice"),                         # gate shut
        rt.verify("dot_iu_add_piece", add, "alice"),
        rt.plan("dot_iu_route_deliver", route, "alice"),
        rt.apply("dot_iu_route_deliver", route, "alice"),                   # gate shut
        rt.apply("dot_iu_dead_letter_replay", {"dead_letter_id": SECRET_BIGINT}, "alice"),
        rt.plan("dot_iu_move_piece", {"op": SECRET_JSON}, "alice"),
        rt.plan("dot_iu_reorder_pieces", {"collection_id": collection,
                                          "piece_ids": list(SECRET_UUIDS)}, "alice"),
        rt.apply("dot_iu_add_piece", {**add, "position": "ZQXJ-ill-typed"}, "alice"),
        rt.plan("dot_iu_add_piece", {**add, "ZQXJ_made_up_name": 1}, "alice"),
    ]
    gate_open(rt_db, COMPOSER_GATE)
    gate_open(rt_db, "iu_core.delivery_enabled")
    outcomes.append(rt.apply("dot_iu_add_piece", add, "alice"))             # applied
    rt_db.execute(FAILING_ROUTE)
    outcomes.append(rt.apply("dot_iu_route_deliver", route, "alice"))       # failed, value in
    assert outcomes[-1].status == "failed" and "ZQXJ-route" in outcomes[-1].message
    assert {o.status for o in outcomes} == {"planned", "applied", "verified", "refused",
                                            "failed"}
    assert len(runs(rt_db)) == len(outcomes)  # every invocation audited exactly once

    needles = [SECRET_TEXT, "ZQXJ", *SECRET_UUIDS, str(SECRET_INT), str(SECRET_BIGINT),
               *(u.replace("-", "") for u in SECRET_UUIDS)]
    tables = package_tables(rt_db)
    assert "public.dot_iu_command_run" in tables and "public.dot_iu_runtime_lease" in tables

    def rows_holding(table, needle):
        return rt_db.execute(
            f"SELECT count(*) FROM {table} AS t WHERE pg_catalog.strpos(t::text, %s) > 0",
            (needle,)).fetchone()[0]

    assert rows_holding("public.dot_iu_command_run", "alice") == len(outcomes)  # the probe
    for table in tables:
        for needle in needles:
            assert rows_holding(table, needle) == 0, f"{needle!r} found in {table}"


# --- connections ------------------------------------------------------------------------------

def test_every_row_records_the_runtime_login_and_the_actor_as_a_claim(rt, rt_db, login):
    rt.plan("dot_iu_healthcheck", {}, "claims-to-be-bob")
    row = only_run(rt_db)
    assert (row["actor"], row["session_login"]) == ("claims-to-be-bob", login.name)


def test_a_runtime_without_a_database_raises_executor_unavailable(pg):
    dead = OperatorRuntime(psycopg_executor(f"host={pg.host} port=1 user=nobody dbname=none",
                                            connect_timeout=2))
    with pytest.raises(ExecutorUnavailable, match="cannot connect"):
        dead.plan("dot_iu_healthcheck", {}, "alice")
