"""Odd inputs meet the runtime's contract (docs/runtime.md): a value too long, too deep or not
valid text is refused and recorded exactly once, never a traceback; a jsonb value reaches the
database exactly as written (every digit of a number, JSON null as the jsonb null); output that
cannot be written leaves the exit code of the run that happened; a lost acknowledgement names the
call's ids whatever was being written; the psql executor carries every setting of the URL and
both executors honour the statement timeout of the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from runtime_helpers import (
    create_login,
    drop_login,
    gate_open,
    login_url,
    prepare_db,
    runs,
    runtime,
)

from substrate.runtime import OutcomeUnknown
from substrate.runtime import cli as run_cli
from substrate.runtime.params import (
    JSON_NULL,
    IllTyped,
    canonical,
    names_digest,
    params_digest,
    sql_text,
    type_params,
)
from substrate.runtime.runtime import INVALID_ACTOR, actor_problem

SUBSTRATE = Path(sys.executable).with_name("substrate")
C = "6f1c0b7e-8d56-4d3e-9d7e-111111111111"
P = "6f1c0b7e-8d56-4d3e-9d7e-222222222222"
STRUCTURE_GATE = "iu_core.structure_ops_enabled"


@pytest.fixture(scope="module")
def login(pg):
    made = create_login(pg)
    yield made
    drop_login(pg, made)


@pytest.fixture
def rt_db(db):
    prepare_db(db)
    gate_open(db, STRUCTURE_GATE)
    return db


@pytest.fixture
def url(pg, login, db_name, rt_db) -> str:
    return login_url(pg, login, db_name)


def substrate_run(*args: str | bytes, **env: str) -> subprocess.CompletedProcess:
    """`substrate run ARGS` as a process; bytes arguments go as they are (not UTF-8 ones too)."""
    base = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    argv = [os.fsencode(SUBSTRATE), b"run", *(a if isinstance(a, bytes) else a.encode()
                                              for a in args)]
    return subprocess.run(argv, capture_output=True, cwd=PROJECT_ROOT, timeout=60,
                          env={**base, "PYTHONPATH": str(PROJECT_ROOT), **env})


# --- values the typing refuses instead of crashing -----------------------------------------------

@pytest.mark.parametrize(("pg_type", "value"), [
    ("integer", "9" * 5000),          # int() refuses 4,300 digits and more with ValueError
    ("bigint", "-" + "9" * 21),
    ("numeric", "1e999999999"),       # would be a string of a billion digits
    ("numeric", "1e-20000"),          # more than numeric's 16,383 digits after the point
    ("jsonb", "[" * 100_000),         # json.loads: RecursionError
    ("jsonb", "[" * 101 + "]" * 101),  # deeper than MAX_JSON_DEPTH
    ("jsonb", '{"n": 1e999999}'),     # out of numeric's range
    ("jsonb", "[" + "9" * 5000 + "]"),
    ("jsonb[]", "[" * 100_000),
    ("text", "caf\udce9"),            # a lone surrogate: bytes that were not UTF-8
])
def test_a_value_too_long_too_deep_or_not_text_is_ill_typed(pg_type, value):
    with pytest.raises(IllTyped):
        canonical(pg_type, value)


def test_a_nested_python_value_past_the_depth_is_ill_typed_not_a_recursion_error():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(IllTyped, match="nested at most 100 deep"):
        canonical("jsonb", deep)


def test_integers_keep_their_range_check_whatever_the_leading_zeros():
    assert canonical("integer", "-" + "0" * 5000 + "42") == -42
    assert canonical("bigint", "+9223372036854775807") == 2**63 - 1
    with pytest.raises(IllTyped):
        canonical("bigint", "9223372036854775808")


def test_jsonb_numbers_keep_every_digit_in_the_binding_and_the_digest():
    written = '{"amount": 12345678901234567890.5, "p": 0.30000000000000001, "e": 1E+2}'
    value = canonical("jsonb", written)
    assert value == {"amount": Decimal("12345678901234567890.5"),
                     "p": Decimal("0.30000000000000001"), "e": Decimal("100")}
    assert sql_text("jsonb", value) == (
        '{"amount":12345678901234567890.5,"e":100,"p":0.30000000000000001}')
    typed = type_params("c", ["op"], ["jsonb"], {"op": written})
    rounded = type_params("c", ["op"], ["jsonb"], {"op": '{"amount": 12345678901234567000,'
                                                         ' "p": 0.3, "e": 100}'})
    assert params_digest("c", typed) != params_digest("c", rounded)
    # The same number written as JSON text or given as a Python float digests the same.
    assert params_digest("c", type_params("c", ["op"], ["jsonb"], {"op": '{"x": 1.5}'})) == \
        params_digest("c", type_params("c", ["op"], ["jsonb"], {"op": {"x": 1.5}}))


def test_the_binding_is_what_postgresql_reads_digit_for_digit(rt_db):
    written = '{"amount": 12345678901234567890.5, "p": 0.30000000000000001, "e": 1E+2}'
    bound = sql_text("jsonb", canonical("jsonb", written))
    same = rt_db.execute("SELECT %s::jsonb = %s::jsonb, %s::jsonb::text",
                         (bound, written, bound)).fetchone()
    assert same == (True, '{"e": 100, "p": 0.30000000000000001, "amount": 12345678901234567890.5}')


def test_json_null_is_the_jsonb_null_and_never_digests_as_sql_null(rt_db):
    assert canonical("jsonb", "null") is JSON_NULL
    assert sql_text("jsonb", canonical("jsonb", "null")) == "null"
    assert sql_text("jsonb", canonical("jsonb", None)) is None
    # In an array, null is an SQL NULL element (as for every array type); "null" the jsonb one.
    assert sql_text("jsonb[]", canonical("jsonb[]", '[null, "null", 1]')) == '{NULL,"null","1"}'
    assert rt_db.execute("SELECT (%s::jsonb[])[1] IS NULL, (%s::jsonb[])[2] = 'null'::jsonb",
                         ('{NULL,"null","1"}',) * 2).fetchone() == (True, True)
    digests = {params_digest("c", type_params("c", ["op"], ["jsonb"], {"op": given}))
               for given in ("null", None, {"json_null": ["op"]})}
    assert len(digests) == 3
    element = {params_digest("c", type_params("c", ["ops"], ["jsonb[]"], {"ops": given}))
               for given in ('["null"]', "[null]")}
    assert len(element) == 2
    # A plan's parameters given back (DotCommandPlan) keep the jsonb null.
    again = type_params("c", ["op"], ["jsonb"], {"op": JSON_NULL})
    assert again[0].value is JSON_NULL


def test_names_digest_and_actor_take_text_that_was_not_utf8():
    assert len(names_digest("dot_iu_\udcff", ["x\udcff"])) == 32
    assert "not valid Unicode" in actor_problem("al\udcffice")


# --- through the runtime and the CLI: refused, recorded once, no traceback -----------------------

@pytest.mark.parametrize("case", ["huge integer", "deep json", "not utf-8 value",
                                  "not utf-8 name"])
def test_odd_parameters_are_refused_and_recorded_once(pg, login, db_name, rt_db, case):
    params = {
        "huge integer": {"collection_id": C, "piece_id": P, "position": "9" * 5000},
        "deep json": {"collection_id": C, "piece_id": P, "position": "[" * 100_000},
        "not utf-8 value": {"collection_id": "\udcff" + C, "piece_id": P, "position": "3"},
        "not utf-8 name": {"collection_id": C, "piece_id": P, "position": "3", "x\udcff": "1"},
    }[case]
    before = len(runs(rt_db))
    result = runtime(pg, login, db_name).plan("dot_iu_add_piece", params, "alice")
    assert (result.status, result.run_id is not None) == ("refused", True)
    rows = runs(rt_db)
    assert len(rows) == before + 1
    assert rows[-1]["evidence"]["reason"] == "parameters"


def test_cli_odd_inputs_never_print_a_traceback(url, rt_db):
    before = len(runs(rt_db))
    huge = substrate_run("plan", "dot_iu_add_piece", "--param", f"collection_id={C}",
                         "--param", f"piece_id={P}", "--param", "position=" + "9" * 5000,
                         "--actor", "alice", "--url", url)
    actor = substrate_run("plan", "dot_iu_healthcheck", "--actor", b"al\xffice", "--url", url)
    name = substrate_run("plan", "dot_iu_healthcheck", "--param", b"x\xff=1", "--actor", "alice",
                         "--url", url)
    for done in (huge, actor, name):
        assert done.returncode == 1, done.stderr
        assert b"Traceback" not in done.stderr
        assert done.stderr.count(b"\n") == 1
    rows = runs(rt_db)
    assert len(rows) == before + 3
    assert rows[-2]["actor"] == INVALID_ACTOR
    command = substrate_run("plan", b"dot_iu_\xff", "--actor", "alice", "--url", url)
    assert command.returncode == 2
    assert command.stderr == b"substrate run plan: COMMAND is not valid text (bytes that are not" \
                             b" UTF-8)\n"
    assert len(runs(rt_db)) == before + 3


def test_a_closed_pipe_after_a_committed_apply_keeps_exit_0(url, rt_db):
    process = subprocess.Popen(
        [str(SUBSTRATE), "run", "apply", "dot_iu_healthcheck", "--actor", "alice", "--url", url,
         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT_ROOT,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    process.stdout.close()  # the reader (| head) is gone before the result is printed
    err = process.stderr.read()
    assert process.wait(timeout=60) == 0, err
    assert err == b""
    assert runs(rt_db)[-1]["run_status"] == "applied"


def test_output_that_cannot_be_written_says_so_and_keeps_the_exit_code(url, rt_db):
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [str(SUBSTRATE), "run", "apply", "dot_iu_healthcheck", "--actor", "alice", "--url",
             url], stdout=full, stderr=subprocess.PIPE, cwd=PROJECT_ROOT, timeout=60,
            env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert done.returncode == 0
    assert done.stderr.startswith(b"substrate run apply: the output could not be written")
    assert done.stderr.count(b"\n") == 1
    assert runs(rt_db)[-1]["run_status"] == "applied"


def test_an_ascii_terminal_gets_escapes_not_an_encoding_error(url, rt_db):
    done = substrate_run("plan", "dot_iu_healthcheck", "--actor", "Zoë", "--url", url,
                         PYTHONIOENCODING="ascii")
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr


# --- a lost acknowledgement names the call whatever was being written ----------------------------

class _LosesLedgerCommit:
    """Reads go through; a write of the ledger loses its COMMIT acknowledgement."""

    def __init__(self, inner):
        self.inner = inner

    def run(self, statements, read_only=False):
        if not read_only and "fn_dot_iu_command_log" in statements[0].sql:
            raise OutcomeUnknown("the connection was lost during COMMIT: simulated")
        return self.inner.run(statements, read_only=read_only)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("mode", ["plan", "verify"])
def test_outcome_unknown_of_a_plan_or_verify_carries_the_calls_ids(pg, login, db_name, rt_db,
                                                                   mode):
    rt = runtime(pg, login, db_name)
    rt.executor = _LosesLedgerCommit(rt.executor)
    with pytest.raises(OutcomeUnknown) as caught:
        getattr(rt, mode)("dot_iu_healthcheck", {}, "alice", correlation_id=C)
    assert (caught.value.correlation_id, caught.value.mode) == (C, mode)


# --- the CLI's executors: the URL's settings and the environment's statement timeout -------------

def _args(url: str, executor: str):
    return type("Args", (), {"url": url, "executor": executor})()


def test_the_psql_executor_carries_every_setting_of_the_url(url, rt_db):
    required = f"{url}?sslmode=require&options=-c%20work_mem%3D8MB"  # the test server has no SSL
    codes = {kind: substrate_run("plan", "dot_iu_healthcheck", "--actor", "alice", "--url",
                                 required, "--executor", kind).returncode
             for kind in ("psycopg", "psql")}
    assert codes == {"psycopg": 2, "psql": 2}
    executor = run_cli._executor(_args(required.replace("require", "disable"), "psql"))
    assert "sslmode='disable'" in executor.conninfo
    assert "options='-c work_mem=8MB'" in executor.conninfo
    assert "password" not in executor.conninfo
    with pytest.raises(ValueError, match="sslpassword"):
        run_cli._executor(_args(f"{url}?sslpassword=secret", "psql"))


@pytest.mark.parametrize("kind", ["psycopg", "psql"])
def test_both_executors_take_the_statement_timeout_of_the_environment(url, rt_db, kind,
                                                                      monkeypatch):
    monkeypatch.setenv("SUBSTRATE_STATEMENT_TIMEOUT", "1.5")
    executor = run_cli._executor(_args(url, kind))
    try:
        assert executor.settings["statement_timeout"] == "1500ms"
        if kind == "psycopg":
            [[row]] = executor.run([_show_timeout()])
            assert row == {"statement_timeout": "1500ms"}
    finally:
        executor.close()
    monkeypatch.delenv("SUBSTRATE_STATEMENT_TIMEOUT")
    assert run_cli._executor(_args(url, "psql")).settings["statement_timeout"] == "300000ms"


def _show_timeout():
    from substrate.runtime.executors import Statement

    return Statement("SELECT pg_catalog.current_setting('statement_timeout')"
                     " AS statement_timeout")


# --- what comes back: huge numbers, and nothing that steers a terminal ---------------------------

@pytest.mark.parametrize("kind", ["psycopg", "psql"])
def test_a_result_number_past_int_digits_comes_back_as_its_digits(pg, login, db_name, rt_db,
                                                                   kind):
    from runtime_helpers import executor as make_executor

    from substrate.runtime.executors import Statement

    runner = make_executor(pg, login, db_name, kind)
    try:
        [[row]] = runner.run([Statement("SELECT pg_catalog.repeat('9', 5000)::numeric AS n,"
                                        " 42 AS small")], read_only=True)
    finally:
        runner.close()
    assert row == {"n": "9" * 5000, "small": 42}


def test_control_characters_reach_the_terminal_as_escapes(capsys):
    from substrate.runtime.runtime import RunResult

    result = RunResult("applied", "apply", "dot_iu_healthcheck", 7, C, "0" * 32,
                       "applied;\x1b[2J \x9b31m done", rows=[{"v": "a\x9b31m\x7fb\x1b"}])
    run_cli._print_result(result, type("Args", (), {"json": False})(), "substrate run apply")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out and "\x7f" not in out
    assert "\\x1b[2J \\x9b31m done" in out
    assert '"a\\x9b31m\\x7fb\\u001b"' in out


# --- a refused plan-bound apply stays findable from its chain ------------------------------------

CHAIN = """
SELECT run_id FROM public.dot_iu_command_run
 WHERE correlation_id = %(k)s::uuid
    OR plan_run_id IN (SELECT run_id FROM public.dot_iu_command_run
                        WHERE correlation_id = %(k)s::uuid AND run_mode = 'plan')
 ORDER BY run_id"""
CORRELATED = ("SELECT run_id FROM public.dot_iu_command_run WHERE correlation_id = %s::uuid"
              " ORDER BY run_id")


def test_a_refused_plan_bound_apply_carries_its_plans_correlation(url, rt_db, capsys):
    """Refused for its parameters (an extra one) before the plan check could return the plan's
    correlation, and made without --correlation-id: the row still joins the plan's chain (the
    logger copies the plan's correlation, 0020), so `correlation_id = K` finds it, as does the
    older chain query."""
    from substrate import cli

    assert cli.main(["run", "plan", "dot_iu_healthcheck", "--actor", "alice", "--url", url]) == 0
    planned = runs(rt_db)[-1]
    assert cli.main(["run", "apply", "dot_iu_healthcheck", "--param", "x=1", "--actor", "alice",
                     "--url", url, "--plan", str(planned["run_id"])]) == 1
    refused = runs(rt_db)[-1]
    assert (refused["run_status"], refused["evidence"]["reason"]) == ("refused", "parameters")
    assert (refused["plan_run_id"], refused["correlation_id"]) == (planned["run_id"],
                                                                   planned["correlation_id"])
    assert f", plan {planned['run_id']})" in capsys.readouterr().err
    k = planned["correlation_id"]
    assert [row[0] for row in rt_db.execute(CORRELATED, (k,))] == [planned["run_id"],
                                                                   refused["run_id"]]
    assert [row[0] for row in rt_db.execute(CHAIN, {"k": k})] == [planned["run_id"],
                                                                  refused["run_id"]]
    # With --correlation-id the refused row carries the id it was given, not the plan's.
    own = "6f1c0b7e-8d56-4d3e-9d7e-555555555555"
    assert cli.main(["run", "apply", "dot_iu_healthcheck", "--param", "x=1", "--actor", "alice",
                     "--url", url, "--plan", str(planned["run_id"]), "--correlation-id",
                     own]) == 1
    assert (runs(rt_db)[-1]["plan_run_id"], runs(rt_db)[-1]["correlation_id"]) == (
        planned["run_id"], own)


def test_a_backend_killed_mid_apply_gives_one_line_on_stderr(pg, url, rt_db):
    """The connection dies while the apply waits for a lock: one line (could not run, or
    outcome unknown), never a driver's warning beside it, and no applied row."""
    import time

    import psycopg

    locker = psycopg.connect(pg.conninfo(rt_db.info.dbname))
    try:
        locker.execute("LOCK TABLE public.rt_test_standin_call IN ACCESS EXCLUSIVE MODE")
        process = subprocess.Popen(
            [str(SUBSTRATE), "run", "apply", "dot_iu_healthcheck", "--actor", "alice", "--url",
             url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT_ROOT,
            env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
        waiting = []
        for _ in range(100):
            waiting = rt_db.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'substrate run'"
                " AND wait_event_type = 'Lock'").fetchall()
            if waiting:
                break
            time.sleep(0.1)
        assert waiting, "the apply never waited for the lock"
        rt_db.execute("SELECT pg_terminate_backend(%s)", waiting[0])
        out, err = process.communicate(timeout=60)
    finally:
        locker.close()
    assert process.returncode == 2, err
    assert err.count(b"\n") == 1, err
    assert b"Traceback" not in err and b"ignored" not in err
    assert [r["run_status"] for r in runs(rt_db)].count("applied") == 0
