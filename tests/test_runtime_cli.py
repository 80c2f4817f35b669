"""`substrate run` (SPEC 3.8) as an operator meets it, logged in as a member of dot_iu_runtime:
exit 0 planned/applied/verified, 1 refused or failed (each audited exactly once), 2 could not
run; a status line or --json; one line on stderr and never a traceback on errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from runtime_helpers import (
    COMPOSER_GATE,
    create_login,
    drop_login,
    gate_open,
    login_url,
    prepare_db,
    registry,
    runs,
)

from substrate import cli
from substrate.devdb import server as devdb

SUBSTRATE = Path(sys.executable).with_name("substrate")
C = "6f1c0b7e-8d56-4d3e-9d7e-111111111111"
P = "6f1c0b7e-8d56-4d3e-9d7e-222222222222"
ADD = ("--param", f"collection_id={C}", "--param", f"piece_id={P}", "--param", "position=3")
RESULT_KEYS = {"status", "mode", "command", "run_id", "correlation_id", "params_digest",
               "plan_run_id", "sqlstate", "message", "rows"}


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
def url(pg, login, db_name, rt_db) -> str:
    return login_url(pg, login, db_name)


def run(capsys, *args: str) -> tuple[int, str, str]:
    """`substrate run ARGS` in-process: (exit code, stdout, stderr)."""
    code = cli.main(["run", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return {**env, "PYTHONPATH": str(PROJECT_ROOT), **extra}


def run_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SUBSTRATE), "run", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=_env(**env), timeout=60)


def run_id(line: str) -> int:
    return int(re.search(r"\(run ([0-9]+)", line).group(1))


# --- exit 0 -------------------------------------------------------------------------------------

def test_plan_apply_verify_exit_0_with_a_status_line_each(url, rt_db, capsys):
    code, out, err = run(capsys, "plan", "dot_iu_healthcheck", "--actor", "alice", "--url", url)
    assert (code, err) == (0, "")
    assert re.fullmatch(r"substrate run plan: planned dot_iu_healthcheck \(run [0-9]+, "
                        r"correlation [0-9a-f-]{36}\): planned; apply needs "
                        r"iu_core\.operator_runtime_enabled\n", out), out
    planned = run_id(out)
    correlation = re.search(r"correlation ([0-9a-f-]{36})", out).group(1)

    code, out, err = run(capsys, "apply", "dot_iu_healthcheck", "--actor", "alice", "--url", url,
                         "--plan", str(planned), "--correlation-id", correlation)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("substrate run apply: applied dot_iu_healthcheck (run ")
    assert lines[1:] == ['  {"fn_iu_collection_healthcheck": {"args": [], '
                         '"fn": "fn_iu_collection_healthcheck"}}']

    code, out, err = run(capsys, "verify", "dot_iu_healthcheck", "--actor", "alice", "--url",
                         url, "--correlation-id", correlation)
    assert (code, err) == (0, "") and "verified (healthcheck)" in out
    assert registry(rt_db, "dot_iu_healthcheck") == (3, 1, 0, 0, "verified")
    assert {r["correlation_id"] for r in runs(rt_db)} == {correlation}


def test_json_output_is_the_whole_result(url, rt_db, capsys):
    gate_open(rt_db, COMPOSER_GATE)
    code, out, err = run(capsys, "apply", "dot_iu_add_piece", *ADD, "--actor", "alice",
                         "--url", url, "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert set(result) == RESULT_KEYS
    assert (result["status"], result["mode"], result["command"]) == ("applied", "apply",
                                                                      "dot_iu_add_piece")
    assert result["rows"] == [{"fn_iu_collection_add_piece": {
        "fn": "fn_iu_collection_add_piece", "args": [C, P, 3]}}]
    assert result["run_id"] == runs(rt_db)[0]["run_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", result["params_digest"])


def test_arrays_and_jsonb_are_given_as_json(url, rt_db, capsys):
    gate_open(rt_db, COMPOSER_GATE)
    code, out, _ = run(capsys, "apply", "dot_iu_reorder_pieces", "--param",
                       f"collection_id={C}", "--param", f'piece_ids=["{P}", "{C}"]',
                       "--actor", "alice", "--url", url, "--json")
    assert code == 0
    assert json.loads(out)["rows"][0]["fn_iu_collection_reorder"]["args"] == [C, [P, C]]
    code, out, _ = run(capsys, "plan", "dot_iu_move_piece", "--param", 'op={"to": 2}',
                       "--actor", "alice", "--url", url)
    assert code == 0


def test_the_psql_executor_gives_the_same_result_from_the_command_line(pg, url, rt_db, capsys,
                                                                       monkeypatch):
    bindir = str(Path(pg.tool("psql")).parent)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
    results = []
    for kind in ("psycopg", "psql"):
        code, out, err = run(capsys, "apply", "dot_iu_validate_collection", "--param",
                             f"collection_id={C}", "--actor", "alice", "--url", url,
                             "--executor", kind, "--json")
        assert (code, err) == (0, ""), (kind, err)
        results.append({k: v for k, v in json.loads(out).items()
                        if k not in ("run_id", "correlation_id")})
    assert results[0] == results[1]


# --- exit 1: refused or failed, audited exactly once -------------------------------------------

def test_a_refusal_exits_1_with_one_line_and_is_audited_exactly_once(url, rt_db, capsys):
    code, out, err = run(capsys, "apply", "dot_iu_add_piece", *ADD, "--actor", "alice",
                         "--url", url)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert re.fullmatch(r"substrate run apply: refused dot_iu_add_piece \(run [0-9]+, "
                        r"correlation [0-9a-f-]{36}\): gate\(s\) shut: "
                        r"iu_core\.composer_enabled\n", err), err
    assert [(r["run_id"], r["run_status"]) for r in runs(rt_db)] == [(run_id(err), "refused")]


@pytest.mark.parametrize("args, why", [
    (("--param", f"collection_id={C}", "--param", f"piece_id={P}", "--param", "position=x"),
     "position: expected integer"),
    (("--param", f"collection_id={C}", "--param", f"piece_id={P}"),
     "missing parameter(s): position"),
    ((*ADD, "--param", "colour=red"), "1 unknown parameter(s)"),
])
def test_bad_parameters_exit_1_and_are_audited_exactly_once(url, rt_db, capsys, args, why):
    for mode in ("plan", "apply", "verify"):
        code, out, err = run(capsys, mode, "dot_iu_add_piece", *args, "--actor", "alice",
                             "--url", url)
        assert (code, out, err.count("\n")) == (1, "", 1), err
        assert why in err and "Traceback" not in err
    assert [r["run_status"] for r in runs(rt_db)] == ["refused"] * 3


def test_a_failure_exits_1_and_records_the_sqlstate(url, rt_db, capsys):
    rt_db.execute("""CREATE OR REPLACE FUNCTION public.fn_iu_collection_healthcheck()
RETURNS jsonb LANGUAGE sql AS $f$ SELECT (1 / 0)::text::jsonb $f$""")
    code, out, err = run(capsys, "apply", "dot_iu_healthcheck", "--actor", "alice", "--url",
                         url, "--json")
    assert (code, err) == (1, "")
    result = json.loads(out)
    assert (result["status"], result["sqlstate"]) == ("failed", "22012")
    [row] = runs(rt_db)
    assert (row["run_status"], row["evidence"]["sqlstate"]) == ("failed", "22012")


def test_an_uncatalogued_command_exits_1_and_says_the_ledger_did_not_record_it(url, rt_db,
                                                                               capsys):
    code, out, err = run(capsys, "plan", "dot_iu_nope", "--actor", "alice", "--url", url)
    assert (code, out, err.count("\n")) == (1, "", 1)
    assert "(not recorded, correlation" in err and "SQLSTATE 23503" in err
    assert runs(rt_db) == []


# --- exit 2: could not run ----------------------------------------------------------------------

def _closed_port_url() -> str:
    return f"postgresql://nobody@127.0.0.1:{devdb.free_port()}/nowhere"


BAD_URLS = {
    "no URL": None,
    "not a URL": "notaurl",
    "no host, unreachable socket": "postgresql://x:y@/",
    "malformed port": "postgresql://x@127.0.0.1:notaport/db",
    "nothing listening": "CLOSED_PORT",
}


@pytest.mark.parametrize("executor", ["psycopg", "psql"])
@pytest.mark.parametrize("mode", ["plan", "apply", "verify", "reversal"])
@pytest.mark.parametrize("case", list(BAD_URLS))
def test_without_a_reachable_database_exit_2_with_one_line(pg, mode, case, executor):
    url = BAD_URLS[case]
    args = [mode, "dot_iu_healthcheck", "--executor", executor]
    if mode != "reversal":
        args += ["--actor", "alice"]
    if url is not None:
        args += ["--url", _closed_port_url() if url == "CLOSED_PORT" else url]
    path = str(Path(pg.tool("psql")).parent) + os.pathsep + os.environ.get("PATH", "")
    result = run_process(*args, PATH=path)
    lines = result.stderr.splitlines()
    assert (result.returncode, len(lines), result.stdout) == (2, 1, ""), result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"substrate run {mode}: "), lines[0]


@pytest.mark.parametrize("args", [
    ["plan", "dot_iu_healthcheck", "--actor", "alice", "--param", "noequals"],
    ["plan", "dot_iu_healthcheck", "--actor", "alice", "--param", "a=1", "--param", "a=2"],
])
def test_malformed_parameters_exit_2_with_one_line_before_touching_a_database(args):
    result = run_process(*args, "--url", _closed_port_url())
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr
    assert "--param" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ["plan", "dot_iu_healthcheck"],                                           # no --actor
    ["plan", "dot_iu_healthcheck", "--actor", "a", "--correlation-id", "nope"],
    ["apply", "dot_iu_healthcheck", "--actor", "a", "--plan", "-3"],
    ["plan", "dot_iu_healthcheck", "--actor", "a", "--plan", "3"],            # apply only
    ["plan", "dot_iu_healthcheck", "--actor", "a", "--executor", "odbc"],
])
def test_bad_arguments_exit_2_without_a_traceback(args):
    result = run_process(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: substrate")


def test_a_lost_commit_exits_2_naming_the_correlation_to_look_up(url, rt_db, capsys):
    rt_db.execute("""
CREATE FUNCTION public.rt_test_kill_own_backend() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $f$ BEGIN PERFORM pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid());
RETURN NULL; END $f$;
CREATE CONSTRAINT TRIGGER rt_test_kill_at_commit AFTER INSERT ON public.dot_iu_command_run
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.run_status = 'applied')
EXECUTE FUNCTION public.rt_test_kill_own_backend();""")
    correlation = "0b8e0a52-5a8a-4c1f-9a55-6d1f4b1c2d3e"
    code, out, err = run(capsys, "apply", "dot_iu_healthcheck", "--actor", "alice", "--url",
                         url, "--correlation-id", correlation)
    assert (code, out, err.count("\n")) == (2, "", 1)
    assert "outcome unknown" in err and correlation in err
    assert runs(rt_db) == []


# --- reversal and help --------------------------------------------------------------------------

def test_reversal_prints_the_inverse_and_runs_nothing(url, rt_db, capsys):
    code, out, err = run(capsys, "reversal", "dot_iu_add_piece", "--url", url)
    assert (code, err) == (0, "")
    assert out.startswith("substrate run reversal: dot_iu_add_piece: inverse "
                          "dot_iu_remove_piece; reverse with dot_iu_remove_piece")
    code, out, _ = run(capsys, "reversal", "dot_iu_route_deliver", "--url", url, "--json")
    assert code == 0
    assert json.loads(out) == {
        "command": "dot_iu_route_deliver", "mutating": True, "reversible": False,
        "inverse_command": None, "inverse_target": None,
        "note": "irreversible: the catalog names no inverse; compensate by hand or restore "
                "from a backup"}
    code, out, err = run(capsys, "reversal", "dot_iu_nope", "--url", url)
    assert (code, out, err.count("\n")) == (1, "", 1)
    assert runs(rt_db) == []


def test_run_help_imports_no_database_driver():
    code = ("import contextlib, io, json, sys\nimport substrate.cli as cli\n"
            "for argv in (['run', '--help'], ['run', 'apply', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n            cli.main(argv)\n        except SystemExit:\n"
            "            pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('psycopg', 'psycopg_binary', 'sqlalchemy', 'alembic'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, env=_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
