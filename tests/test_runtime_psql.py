"""The psql executor (SPEC 3.8, "Executors"): the same results as psycopg for the same calls,
whatever the values hold, on this host and through a remote shell that re-splits its
arguments; errors with their SQLSTATE and step; a lost commit is an unknown outcome."""

from __future__ import annotations

import stat

import pgtap
import pytest
from runtime_helpers import (
    calls,
    create_login,
    drop_login,
    executor,
    gate_open,
    prepare_db,
    runs,
)

from substrate.runtime import (
    DatabaseError,
    ExecutorUnavailable,
    OperatorRuntime,
    OutcomeUnknown,
    psql_executor,
    psycopg_executor,
)
from substrate.runtime.executors import RowCount, Statement

WEIRD = [
    "tab\there", "new\nline", "crlf\r\nend", "'single' \"double\" `back`",
    "semi; colon: :var :'x' :\"y\"", "back\\slash \\q \\! echo pwned", "pipe|sep|,comma",
    "$$ dollar $tag$", "%s %% percent", "", " leading and trailing ", "é ✓ 日本 🚀",
    "0123456789abcdef R 0 00", "-- comment /* c */", "{\"json\": [1, 2]}", "NULL",
]
GATES = ("iu_core.delivery_enabled", "iu_core.composer_enabled",
         "iu_core.structure_ops_enabled", "queue.dlq.replay_enabled")
CORRELATION = "0b8e0a52-5a8a-4c1f-9a55-6d1f4b1c2d3e"
U1, U2 = "6f1c0b7e-8d56-4d3e-9d7e-111111111111", "6f1c0b7e-8d56-4d3e-9d7e-222222222222"
FAKE_SSH = """#!/bin/sh
# A stand-in for ssh: drops the host, then lets a shell re-split the rest, as sshd does.
shift
exec sh -c "$*"
"""
KILL_AT_COMMIT = """
CREATE FUNCTION public.rt_test_kill_own_backend() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $f$ BEGIN PERFORM pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid());
RETURN NULL; END $f$;
CREATE CONSTRAINT TRIGGER rt_test_kill_at_commit AFTER INSERT ON public.dot_iu_command_run
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.run_status = 'applied')
EXECUTE FUNCTION public.rt_test_kill_own_backend();
"""


@pytest.fixture(scope="module")
def login(pg):
    made = create_login(pg)
    yield made
    drop_login(pg, made)


@pytest.fixture
def rt_db(db):
    prepare_db(db)
    for gate in GATES:
        gate_open(db, gate)
    return db


@pytest.fixture
def fake_ssh(tmp_path):
    path = tmp_path / "fake-ssh"
    path.write_text(FAKE_SSH)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def executors(pg, login, db_name, rt_db, fake_ssh, monkeypatch):
    """kind -> executor: psycopg, local psql, and psql through the stand-in remote shell."""
    monkeypatch.setenv("PGPASSWORD", login.password)  # what ~/.pgpass does on a real remote
    made = {
        "psycopg": executor(pg, login, db_name, "psycopg"),
        "psql": executor(pg, login, db_name, "psql"),
        "psql over ssh": psql_executor(pg.host, pg.port, login.name, db_name,
                                       psql=pg.tool("psql"), remote=(fake_ssh, "db1")),
    }
    yield made
    for one in made.values():
        one.close()


def same(result) -> tuple:
    """What must not depend on the executor (ids and correlations are per call)."""
    return (result.status, result.mode, result.command, result.params_digest, result.message,
            result.rows, result.sqlstate)


def test_the_stand_in_remote_shell_really_re_splits_its_arguments(fake_ssh):
    import subprocess

    out = subprocess.run([fake_ssh, "db1", "printf", "[%s]", "a b"], capture_output=True,
                         text=True).stdout
    assert out == "[a][b]"  # so an argument list passed as is would not survive it


def test_every_executor_returns_the_same_rows_for_the_same_statements(executors):
    statements = [
        Statement("SELECT %s::text AS v, pg_catalog.length(%s::text) AS n, NULL::text AS z",
                  (value, value)) for value in WEIRD
    ] + [
        Statement("SELECT g AS i, %s::jsonb AS j FROM pg_catalog.generate_series(1, 3) AS g",
                  ('{"k": "v\\t\\n", "n": 1.50, "a": [true, null]}',)),
        Statement("SELECT %s::integer AS rows_of_the_last", (RowCount(len(WEIRD)),)),
        Statement("SELECT 1 AS none WHERE false"),
    ]
    results = {kind: one.run(statements, read_only=True) for kind, one in executors.items()}
    assert results["psql"] == results["psycopg"] == results["psql over ssh"]
    rows = results["psycopg"]
    assert [r[0]["v"] for r in rows[:len(WEIRD)]] == WEIRD
    assert rows[len(WEIRD)][0]["j"] == {"a": [True, None], "k": "v\t\n", "n": 1.5}
    assert rows[-2] == [{"rows_of_the_last": 3}] and rows[-1] == []


@pytest.mark.parametrize("value", [WEIRD[i] for i in (0, 1, 3, 4, 5, 6, 11, 12)])
def test_the_runtime_gives_the_same_results_through_every_executor(executors, rt_db, value):
    outcomes = {}
    for kind, one in executors.items():
        runtime = OperatorRuntime(one, lease="parity")
        outcomes[kind] = [
            runtime.plan("dot_iu_route_deliver", {"route_code": value}, "alice"),
            runtime.apply("dot_iu_route_deliver", {"route_code": value}, "alice"),
            runtime.apply("dot_iu_move_piece", {"op": {"to": value, "n": [1, value]}}, "alice"),
            runtime.apply("dot_iu_reorder_pieces", {"collection_id": U1,
                                                    "piece_ids": [U2, None, U1]}, "alice"),
            runtime.apply("dot_iu_dead_letter_replay", {"dead_letter_id": 2**62}, "alice"),
            runtime.verify("dot_iu_healthcheck", {}, "alice"),
            runtime.apply("dot_iu_add_piece", {"collection_id": value}, "alice"),
        ]
    psycopg_outcomes = [same(r) for r in outcomes["psycopg"]]
    for kind in ("psql", "psql over ssh"):
        assert [same(r) for r in outcomes[kind]] == psycopg_outcomes, kind
    applied = outcomes["psql over ssh"][1]
    assert applied.rows == [{"fn_iu_route_deliver": {"fn": "fn_iu_route_deliver",
                                                     "args": [value]}}]
    assert outcomes["psql"][3].rows[0]["fn_iu_collection_reorder"]["args"] == [U1, [U2, None,
                                                                                    U1]]
    assert [r.status for r in outcomes["psql"]] == ["planned", "applied", "applied", "applied",
                                                   "applied", "verified", "refused"]
    assert len(runs(rt_db)) == 3 * 7


def test_a_database_error_has_the_same_sqlstate_message_and_step_everywhere(executors, rt_db):
    rt_db.execute("""
CREATE OR REPLACE FUNCTION public.fn_iu_route_deliver(p_route_code text) RETURNS jsonb
LANGUAGE plpgsql AS $f$ BEGIN
  RAISE NOTICE 'ERROR:  42501: a notice pretending to be an error';
  RAISE EXCEPTION E'route %\nERROR:  42501: spoofed line', p_route_code USING ERRCODE = 'P0001';
END $f$""")
    seen = {}
    for kind, one in executors.items():
        with pytest.raises(DatabaseError) as caught:
            one.run([Statement("SELECT 1 AS one"),
                     Statement("SELECT public.fn_iu_route_deliver(%s::text)", ("x\ny",))])
        seen[kind] = (caught.value.sqlstate, caught.value.message, caught.value.step)
        result = OperatorRuntime(one).apply("dot_iu_route_deliver", {"route_code": "r'1"},
                                            "alice")
        assert (result.status, result.sqlstate) == ("failed", "P0001"), kind
    assert set(seen.values()) == {("P0001", "route x", 1)}
    assert calls(rt_db) == []


def test_without_a_server_every_executor_is_unavailable(pg, fake_ssh):
    dead = [psycopg_executor(f"host={pg.host} port=1 user=nobody dbname=none"),
            psql_executor(pg.host, 1, "nobody", "none", psql=pg.tool("psql")),
            psql_executor(pg.host, 1, "nobody", "none", psql=pg.tool("psql"),
                          remote=(fake_ssh, "db1")),
            psql_executor(pg.host, 1, "nobody", "none", psql="/nonexistent/psql")]
    for one in dead:
        with pytest.raises(ExecutorUnavailable) as caught:
            one.run([Statement("SELECT 1 AS one")])
        assert not isinstance(caught.value, OutcomeUnknown)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["psycopg", "psql", "psql over ssh"])
def test_a_connection_lost_during_commit_is_an_unknown_outcome_and_nothing_more_is_recorded(
        executors, rt_db, kind):
    rt_db.execute(KILL_AT_COMMIT)  # the backend dies at COMMIT, once the applied row is in
    runtime = OperatorRuntime(executors[kind])
    with pytest.raises(OutcomeUnknown) as caught:
        runtime.apply("dot_iu_healthcheck", {}, "alice", correlation_id=CORRELATION)
    assert (caught.value.correlation_id, caught.value.plan_run_id) == (CORRELATION, None)
    assert runs(rt_db) == [] and calls(rt_db) == []  # here it did not commit; nor any 'failed'
    # the lease was taken and given back inside the apply's transaction: nothing of it is held
    pgtap.results_eq(rt_db, "SELECT count(*) FROM public.v_dot_iu_runtime_lease WHERE held",
                     [(0,)])
