"""The `substrate` command as a user meets it: help that imports no database driver, and one
line on stderr with exit 2 whenever a command has no database to talk to (a server that never
answers included: every connection has a connect timeout, docs/gates.md)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from substrate import cli
from substrate.devdb import server as devdb

SUBSTRATE = Path(sys.executable).with_name("substrate")  # the installed console script
HEAVY = ("sqlalchemy", "alembic", "psycopg", "psycopg_binary")
GATE_ACTIONS = ("status", "open", "close", "watchdog")


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter of this checkout; the JSON it prints last."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, env=_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)  # the checkout under test, whatever is installed
    return {**env, **extra}


HELP_PROBE = """
import contextlib, io, json, sys
import substrate.cli as cli
helps = {}
for argv in ARGVS:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            cli.main(argv)
        except SystemExit:
            pass
    helps[" ".join(argv)] = out.getvalue()
print(json.dumps({"helps": helps, "modules": sorted(sys.modules)}))
"""


def help_probe(argvs: list[list[str]]) -> dict:
    return run_python(HELP_PROBE.replace("ARGVS", repr(argvs)))


def heavy_modules(modules: list[str]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in HEAVY]


def test_help_lists_every_sub_command_without_importing_any_of_them():
    probe = help_probe([["--help"]])
    text = " ".join(probe["helps"]["--help"].split())
    for name, (module, help_line) in cli.COMMANDS.items():
        assert f"{name} {help_line}" in text, (name, text)
        assert module not in probe["modules"], f"substrate --help imported {module}"
    assert heavy_modules(probe["modules"]) == []


def test_help_of_every_sub_command_imports_no_database_driver():
    argvs = [[name, "--help"] for name in cli.COMMANDS]
    argvs += [["gates", action, "--help"] for action in GATE_ACTIONS]
    probe = help_probe(argvs)
    for argv in argvs:
        text = probe["helps"][" ".join(argv)]
        assert text.startswith(f"usage: substrate {' '.join(argv[:-1])}"), (argv, text)
    assert heavy_modules(probe["modules"]) == []
    strict = " ".join(probe["helps"]["verify --help"].split())
    assert "unresolved target function" in strict
    assert "governable gate open inside its approved window" in strict


def test_gates_help_promises_exactly_the_actions_gates_has():
    usage = help_probe([["gates", "--help"]])["helps"]["gates --help"].splitlines()[0]
    has = set(re.search(r"\{([a-z,]+)\}", usage).group(1).split(","))
    promised = cli.COMMANDS["gates"][1].split(" the gates")[0]
    assert set(re.findall(r"[a-z]+", promised)) - {"and"} == has == set(GATE_ACTIONS)


def _closed_port_url() -> str:
    return f"postgresql://nobody@127.0.0.1:{devdb.free_port()}/nowhere"


URL_COMMANDS = {
    "report": ["report"],
    "proof": ["proof"],
    "verify": ["verify"],
    "drift": ["drift"],
    "gates status": ["gates", "status"],
    "gates open": ["gates", "open", "iu_core.composer_enabled", "--approval", "CHG-1",
                   "--ttl", "60", "--actor", "ops", "--reason", "test"],
    "gates close": ["gates", "close", "iu_core.composer_enabled", "--actor", "ops",
                    "--reason", "test"],
    "gates watchdog": ["gates", "watchdog", "--actor", "cron@test"],
}
BAD_URLS = {
    "no URL": None,
    "not a URL": "notaurl",
    "no host, unreachable socket": "postgresql://x:y@/",
    "malformed port": "postgresql://x@127.0.0.1:notaport/db",
    "nothing listening": "CLOSED_PORT",
    "a server that never answers": "SILENT",
}


@pytest.fixture(scope="module")
def silent_url():
    """A TCP listener that accepts connections and never writes a byte: a hung server."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept_forever():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # closed: the module is done
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    yield f"postgresql://nobody@127.0.0.1:{listener.getsockname()[1]}/silent"
    listener.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("command", list(URL_COMMANDS))
@pytest.mark.parametrize("case", list(BAD_URLS))
def test_a_command_without_a_reachable_database_exits_2_with_one_line(request, command, case):
    url = BAD_URLS[case]
    if url == "CLOSED_PORT":
        url = _closed_port_url()
    elif url == "SILENT":
        url = request.getfixturevalue("silent_url")
    argv = [str(SUBSTRATE), *URL_COMMANDS[command]]
    if url is not None:
        argv += ["--url", url]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=PROJECT_ROOT,
                            env=_env(SUBSTRATE_CONNECT_TIMEOUT="2"), timeout=60)
    lines = result.stderr.splitlines()
    assert (result.returncode, len(lines)) == (2, 1), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"substrate {command}: "), lines[0]
    if BAD_URLS[case] == "SILENT":
        assert "no answer from the server within the connect timeout (2 s" in lines[0]


def test_db_down_on_a_stopped_server_says_it_was_not_running():
    """Run against a project server that is stopped (a running demo server is left alone)."""
    for major in sorted(devdb.BINARY_VERSIONS):
        env = _env(PG_MAJOR=str(major))
        env.pop("PG_BIN", None)
        env.pop("PG_PORT", None)
        status = subprocess.run([str(SUBSTRATE), "db", "status"], capture_output=True, text=True,
                                cwd=PROJECT_ROOT, env=env)
        if status.returncode == 1:
            break
    else:
        pytest.skip("the project's server of every major is running")
    assert status.stdout.startswith("stopped: "), status.stdout + status.stderr
    down = subprocess.run([str(SUBSTRATE), "db", "down"], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env)
    assert (down.returncode, down.stderr) == (0, "")
    assert down.stdout.startswith("not running: ") and "stopped" not in down.stdout


def test_report_on_an_empty_ledger_says_never_not_none(capsys, db_url):
    assert cli.main(["report", "--url", db_url]) == 0
    out = capsys.readouterr().out
    assert "None" not in out
    assert any(line.split() == ["last_run_at", "never"] for line in out.splitlines()), out
