"""`substrate gates` against the real server (docs/gates.md): output, exit codes, the audit
trail, bounded time, and a real gate operator login.

Every refusal through the CLI leaves exactly one `refused` run-ledger row (its own transaction,
written by the database's refusal recorder) and nothing else; errors print one line with the
SQLSTATE and message, never a traceback. A silent server or a lock held elsewhere ends the
command within its timeouts.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pgtap
import pytest
from conftest import PROJECT_ROOT
from gate_helpers import (
    GATE,
    NEVER_FLIP,
    RUNTIME_GATE,
    config,
    counts,
    gate_open,
    runs,
    set_value,
    transitions,
)
from psycopg import sql

from substrate import cli

APPROVAL, REASON = "CHG-7781", "release 2.4 migration window"
RECORDER = "fn_iu_gate_record_refusal(text, text, text, text, text, text, numeric, text, text)"
_logins = itertools.count(1)


def gates(capsys, *args: str) -> tuple[int, str, str]:
    """Run `substrate gates ARGS` in-process; (exit code, stdout, stderr)."""
    code = cli.main(["gates", *args])
    out, err = capsys.readouterr()
    return code, out, err


def open_args(db_url, gate=GATE, approval=APPROVAL, ttl="600", actor="alice", reason=REASON):
    return ("open", gate, "--approval", approval, "--ttl", ttl, "--actor", actor,
            "--reason", reason, "--url", db_url)


def close_args(db_url, gate=GATE, actor="alice", reason="window done"):
    return ("close", gate, "--actor", actor, "--reason", reason, "--url", db_url)


def refused_rows(conn) -> list[tuple]:
    return conn.execute(
        "SELECT command_name, run_mode, run_status, actor, params_digest ~ '^[0-9a-f]{32}$',"
        " evidence FROM dot_iu_command_run WHERE run_status = 'refused' ORDER BY run_id"
    ).fetchall()


# --- the full cycle ---------------------------------------------------------------------------

def test_operator_cycle_open_work_close_is_audited_twice_per_step(db, db_url, capsys):
    code, out, err = gates(capsys, "status", "--url", db_url)
    assert (code, err) == (0, "")
    assert "all_safe: true" in out

    code, out, err = gates(capsys, *open_args(db_url))
    assert (code, err) == (0, "")
    assert out.startswith(f"substrate gates open: opened {GATE} until ")
    assert f"approval {APPROVAL}" in out

    code, out, _ = gates(capsys, "status", "--url", db_url)
    assert code == 1 and "all_safe: false" in out
    line = next(line for line in out.splitlines() if line.startswith(GATE))
    assert line.split()[1:4] == ["governable", "true", "OPEN"] and APPROVAL in line

    code, out, err = gates(capsys, *close_args(db_url))
    assert (code, err) == (0, "")
    assert f"closed {GATE} (was 'true')" in out

    assert transitions(db) == [(GATE, "open", "false", "true"), (GATE, "close", "true", "false")]
    assert runs(db) == [("dot_iu_gate_open", "apply", "applied", "alice"),
                        ("dot_iu_gate_close", "apply", "applied", "alice")]
    assert gates(capsys, "status", "--url", db_url)[0] == 0


def test_status_table_lists_every_gate_and_json_is_the_verify_closed_report(db, db_url, capsys):
    code, out, _ = gates(capsys, "status", "--url", db_url)
    lines = out.splitlines()
    assert lines[0].split() == ["GATE", "CLASS", "VALUE", "STATE", "WINDOW"]
    assert len(lines) == 1 + 9 + 1
    assert {line.split()[0] for line in lines[1:10]} >= {GATE, *NEVER_FLIP}
    code, out, _ = gates(capsys, "status", "--json", "--url", db_url)
    report = json.loads(out)
    assert code == 0 and report["all_safe"] is True and len(report["gates"]) == 9
    code, out, _ = gates(capsys, "status", "--gate", RUNTIME_GATE, "--json", "--url", db_url)
    assert [g["gate"] for g in json.loads(out)["gates"]] == [RUNTIME_GATE]


def test_status_shows_an_orphaned_gate_and_a_flipped_never_flip_gate(db, db_url, capsys):
    set_value(db, "queue.dlq.replay_enabled", "true")
    set_value(db, NEVER_FLIP[0], "true")
    code, out, _ = gates(capsys, "status", "--url", db_url)
    assert code == 1
    assert "ORPHANED" in next(line for line in out.splitlines()
                              if line.startswith("queue.dlq.replay_enabled"))
    assert "FLIPPED" in next(line for line in out.splitlines() if line.startswith(NEVER_FLIP[0]))
    assert "never_flip_intact: false" in out


def test_status_refuses_an_unknown_gate_with_exit_2(db_url, capsys):
    code, out, err = gates(capsys, "status", "--gate", "iu_core.nope", "--url", db_url)
    assert (code, out) == (2, "")
    assert "refused (SQLSTATE 22023): gate 'iu_core.nope' is not a known gate" in err


def test_open_and_close_json_print_the_function_result(db, db_url, capsys):
    code, out, _ = gates(capsys, *open_args(db_url, ttl="60"), "--json")
    opened = json.loads(out)
    assert code == 0 and opened["window"]["ttl_seconds"] == 60 and opened["new_value"] == "true"
    code, out, _ = gates(capsys, *close_args(db_url), "--json")
    assert code == 0 and json.loads(out)["prev_value"] == "true"


def test_closing_a_closed_gate_is_a_recorded_no_op(db, db_url, capsys):
    code, out, _ = gates(capsys, *close_args(db_url))
    assert code == 0 and f"{GATE} was already closed; recorded" in out
    assert transitions(db) == [(GATE, "close", "false", "false")]


# --- refusals through the CLI: one refused row each, nothing else -----------------------------

CLI_REFUSALS = [
    ("open-never-flip", lambda url: open_args(url, gate=NEVER_FLIP[0]), "42501",
     "dot_iu_gate_open", "supply a real review_decision_id instead of bypassing review"),
    ("open-unknown", lambda url: open_args(url, gate="iu_core.unknown_enabled"), "22023",
     "dot_iu_gate_open", "unknown means deny"),
    ("open-blank-approval", lambda url: open_args(url, approval=" "), "23514",
     "dot_iu_gate_open", "without an approval"),
    ("open-zero-ttl", lambda url: open_args(url, ttl="0"), "22023", "dot_iu_gate_open",
     "ttl_seconds must be in (0, 3600]"),
    ("open-long-ttl", lambda url: open_args(url, ttl="3601"), "22023", "dot_iu_gate_open",
     "ttl_seconds must be in (0, 3600]"),
    ("open-huge-ttl", lambda url: open_args(url, ttl="99999999999"), "22003",
     "dot_iu_gate_open", "out of range"),
    ("open-blank-actor", lambda url: open_args(url, actor=""), "22023", "dot_iu_gate_open",
     "actor must name who opens"),
    ("close-never-flip", lambda url: close_args(url, gate=NEVER_FLIP[1]), "22023",
     "dot_iu_gate_close", "never written"),
    ("close-unknown", lambda url: close_args(url, gate="nope"), "22023", "dot_iu_gate_close",
     "unknown means deny"),
    ("close-blank-actor", lambda url: close_args(url, actor="  "), "22023", "dot_iu_gate_close",
     "actor must name who closes"),
    ("watchdog-blank-actor", lambda url: ("watchdog", "--actor", "", "--url", url), "22023",
     "dot_iu_gate_watchdog", "actor must name"),
]


@pytest.mark.parametrize("case,argv,sqlstate,command,fragment", CLI_REFUSALS,
                         ids=[c[0] for c in CLI_REFUSALS])
def test_cli_refusal_prints_sqlstate_exits_1_and_records_exactly_one_refused_row(
        db, db_url, capsys, case, argv, sqlstate, command, fragment):
    before = config(db)
    code, out, err = gates(capsys, *argv(db_url))
    action = argv(db_url)[0]
    assert code == 1 and out == ""
    assert err.startswith(f"substrate gates {action}: refused (SQLSTATE {sqlstate}): ")
    assert fragment in err and "Traceback" not in err
    assert config(db) == before
    assert transitions(db) == []
    rows = refused_rows(db)
    assert len(rows) == 1 and counts(db) == (0, 1)
    name, mode, status, actor, digest_ok, evidence = rows[0]
    assert (name, mode, status, digest_ok) == (command, "apply", "refused", True)
    assert evidence["sqlstate"] == sqlstate and fragment in evidence["message"]
    assert APPROVAL not in json.dumps(evidence) and REASON not in json.dumps(evidence)
    if case.endswith("blank-actor"):  # the ledger refuses a blank actor: a placeholder, noted
        assert actor == "(no actor given)" and evidence["actor_missing"] is True
    else:
        assert actor == "alice" and "actor_missing" not in evidence
    assert "recorded as refused run " in err


def test_cli_refusal_of_an_open_gate_leaves_the_window_and_records_one_refused_row(
        db, db_url, capsys):
    gate_open(db)
    before, before_counts = config(db), counts(db)
    code, _, err = gates(capsys, *open_args(db_url, actor="bob"))
    assert code == 1 and "refused (SQLSTATE 55000): gate iu_core.composer_enabled is already open" \
        in err
    assert config(db) == before
    assert counts(db) == (before_counts[0], before_counts[1] + 1)
    assert [row[:4] for row in refused_rows(db)] == [("dot_iu_gate_open", "apply", "refused",
                                                      "bob")]


def test_cli_refused_and_applied_rows_share_the_digest_of_the_same_parameters(db, db_url,
                                                                               capsys):
    gate_open(db, approval=APPROVAL, actor="alice", reason=REASON, ttl=600)
    gates(capsys, *open_args(db_url))  # the very same parameters, refused: already open
    digests = db.execute("SELECT run_status, params_digest FROM dot_iu_command_run"
                         " ORDER BY run_id").fetchall()
    assert [status for status, _ in digests] == ["applied", "refused"]
    assert digests[0][1] == digests[1][1]


def test_each_refused_call_records_its_own_row(db, db_url, capsys):
    for _ in range(3):
        assert gates(capsys, *open_args(db_url, gate=NEVER_FLIP[0]))[0] == 1
    assert len(refused_rows(db)) == 3 and counts(db) == (0, 3)


# --- the watchdog, as cron runs it ------------------------------------------------------------

def test_watchdog_exits_0_when_nothing_was_open(db, db_url, capsys):
    code, out, err = gates(capsys, "watchdog", "--actor", "cron@host", "--url", db_url)
    assert (code, err) == (0, "")
    assert "nothing to close" in out
    assert counts(db) == (0, 0)


def test_watchdog_exits_0_and_spares_a_live_window(db, db_url, capsys):
    gate_open(db)
    assert gates(capsys, "watchdog", "--actor", "cron@host", "--url", db_url)[0] == 0
    assert [t[1] for t in transitions(db)] == ["open"]


def test_watchdog_exits_3_when_it_closed_something_and_audits_it(db, db_url, capsys):
    set_value(db, "queue.job_substrate.enabled", "true")
    code, out, err = gates(capsys, "watchdog", "--actor", "cron@host", "--url", db_url)
    assert (code, err) == (3, "")
    assert "closed 1 gate(s):" in out
    assert "queue.job_substrate.enabled: open with no open window on record" in out
    assert runs(db) == [("dot_iu_gate_watchdog", "apply", "applied", "cron@host")]
    code, out, _ = gates(capsys, "watchdog", "--actor", "cron@host", "--json", "--url", db_url)
    assert (code, json.loads(out)) == (0, [])


def test_watchdog_json_lists_what_it_closed(db, db_url, capsys):
    set_value(db, GATE, "true")
    code, out, _ = gates(capsys, "watchdog", "--actor", "cron@host", "--json", "--url", db_url)
    closed = json.loads(out)
    assert code == 3 and [(c["gate"], c["cause"]) for c in closed] == [(GATE, "orphaned")]


def test_watchdog_exits_2_when_the_database_is_unreachable(capsys):
    code, out, err = gates(capsys, "watchdog", "--actor", "cron@host",
                           "--url", "postgresql://nobody@127.0.0.1:1/none")
    assert code == 2 and out == ""
    assert err.startswith("substrate gates watchdog: cannot connect")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [("status",), ("close", GATE, "--actor", "a", "--reason", "r")])
def test_other_commands_exit_2_when_the_database_is_unreachable(capsys, argv):
    code, _, err = gates(capsys, *argv, "--url", "postgresql://nobody@127.0.0.1:1/none")
    assert code == 2 and "cannot connect" in err and "Traceback" not in err


def test_a_lock_held_elsewhere_fails_the_call_after_the_lock_timeout_and_records_it(
        pg, db, db_url, capsys):
    with pg.connect(db.info.dbname, autocommit=False) as holder:
        holder.execute("SELECT 1 FROM dot_config WHERE key = %s FOR UPDATE", (GATE,))
        code, _, err = gates(capsys, *open_args(db_url), "--lock-timeout", "200ms")
        holder.rollback()
    assert code == 1 and "failed (SQLSTATE 55P03)" in err
    pgtap.results_eq(db, "SELECT command_name, run_status, evidence ->> 'sqlstate'"
                     " FROM dot_iu_command_run", [("dot_iu_gate_open", "failed", "55P03")])
    assert transitions(db) == []


# --- the installed entry point ----------------------------------------------------------------

def test_console_entry_point_runs_the_cycle_and_never_prints_a_traceback(db, db_url):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "substrate.cli", "gates", *args],
                              capture_output=True, text=True, cwd=PROJECT_ROOT)

    opened = run(*open_args(db_url, gate=RUNTIME_GATE, ttl="30"))
    assert opened.returncode == 0, opened.stderr
    assert db.execute("SELECT fn_dot_iu_operator_runtime_enabled()").fetchone()[0] is True
    refused = run(*open_args(db_url, gate=NEVER_FLIP[1]))
    assert refused.returncode == 1
    assert "refused (SQLSTATE 42501)" in refused.stderr and "Traceback" not in refused.stderr
    closed = run(*close_args(db_url, gate=RUNTIME_GATE))
    assert closed.returncode == 0, closed.stderr
    watchdog = run("watchdog", "--actor", "cron@host", "--url", db_url)
    assert watchdog.returncode == 0, watchdog.stderr
    bad = run("open", GATE, "--url", db_url)  # missing required options: argparse, exit 2
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert [row[2] for row in runs(db)] == ["applied", "refused", "applied"]


# --- bounded time: a silent server, a lock held elsewhere ---------------------------------------

@pytest.fixture
def silent_server():
    """A TCP listener that accepts every connection and never writes a byte: a hung server."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept_forever():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # the listener was closed: the test is over
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    yield f"postgresql://nobody@127.0.0.1:{listener.getsockname()[1]}/silent"
    listener.close()
    for conn in accepted:
        conn.close()


def console(*args: str, env: dict | None = None, timeout: float = 60):
    """`substrate gates ARGS` as cron runs it: a process of its own; (result, seconds taken)."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "substrate.cli", "gates", *args],
                            capture_output=True, text=True, cwd=PROJECT_ROOT,
                            env={**os.environ, **(env or {})}, timeout=timeout)
    return result, time.monotonic() - started


@pytest.mark.parametrize("argv,how", [
    (("watchdog", "--actor", "cron@host"), "option"),
    (("watchdog", "--actor", "cron@host"), "environment"),
    (("status",), "option"),
    (("status",), "environment"),
])
def test_a_server_that_never_answers_ends_the_command_with_exit_2_within_the_connect_timeout(
        silent_server, argv, how):
    if how == "option":
        result, took = console(*argv, "--url", silent_server, "--connect-timeout", "2")
    else:
        result, took = console(*argv, "--url", silent_server,
                               env={"SUBSTRATE_CONNECT_TIMEOUT": "2"})
    lines = result.stderr.splitlines()
    assert (result.returncode, result.stdout, len(lines)) == (2, "", 1), result.stderr
    assert lines[0] == (f"substrate gates {argv[0]}: cannot connect: no answer from the server "
                        "within the connect timeout (2 s; SUBSTRATE_CONNECT_TIMEOUT)")
    assert took < 2 + 5, f"took {took:.1f} s with a 2 s connect timeout"


def test_a_timeout_that_is_not_one_is_refused_before_connecting_with_exit_2(capsys, db_url,
                                                                             monkeypatch):
    monkeypatch.setenv("SUBSTRATE_STATEMENT_TIMEOUT", "soon")
    code, out, err = gates(capsys, "status", "--url", db_url)
    assert (code, out) == (2, "")
    assert err == ("substrate gates status: SUBSTRATE_STATEMENT_TIMEOUT='soon': expected "
                   "seconds between 0 (no limit) and 86400\n")


def test_every_connection_carries_the_statement_timeout(db_url, monkeypatch):
    from substrate import connect

    with connect.connect(db_url) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "30s"
    monkeypatch.setenv("SUBSTRATE_STATEMENT_TIMEOUT", "2.5")
    with connect.connect(db_url) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "2500ms"
    with connect.connect(db_url, statement_timeout=0, autocommit=False) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"


@pytest.mark.parametrize("timeouts,sqlstate,why", [
    (("--lock-timeout", "300ms"), "55P03", "lock timeout 300ms: another transaction holds the "
                                           "gate's row; --lock-timeout"),
    (("--lock-timeout", "1min", "--statement-timeout", "1"), "57014",
     "statement timeout 1 s; --statement-timeout or $SUBSTRATE_STATEMENT_TIMEOUT"),
], ids=["lock-timeout", "statement-timeout"])
def test_close_of_a_gate_row_held_elsewhere_ends_at_its_timeout_with_exit_1_and_is_recorded(
        pg, db, db_url, capsys, timeouts, sqlstate, why):
    gate_open(db)
    before = config(db)
    with pg.connect(db.info.dbname, autocommit=False) as holder:
        holder.execute("SELECT 1 FROM dot_config WHERE key = %s FOR UPDATE", (GATE,))
        started = time.monotonic()
        code, out, err = gates(capsys, *close_args(db_url), *timeouts)
        took = time.monotonic() - started
        holder.rollback()
    lines = err.splitlines()
    assert (code, out, len(lines)) == (1, "", 1), err
    assert lines[0].startswith(f"substrate gates close: failed (SQLSTATE {sqlstate}): ")
    assert f"({why}); recorded as failed run " in lines[0]
    assert took < 10, f"took {took:.1f} s"
    pgtap.results_eq(db, "SELECT command_name, run_status, evidence ->> 'sqlstate', actor"
                     " FROM dot_iu_command_run WHERE run_status <> 'applied'",
                     [("dot_iu_gate_close", "failed", sqlstate, "alice")])
    assert config(db) == before and [t[1] for t in transitions(db)] == ["open"]


# --- the refusal recorder -----------------------------------------------------------------------

def recorded_rows(conn) -> list[tuple]:
    return conn.execute(
        "SELECT command_name, run_mode, run_status, actor, params_digest, evidence"
        " FROM dot_iu_command_run WHERE run_status IN ('refused', 'failed') ORDER BY run_id"
    ).fetchall()


def test_the_database_recorder_writes_the_rows_the_client_wrote_through_the_logger(
        db, db_url, capsys):
    """Same calls, recorded first by fn_iu_gate_record_refusal, then (the recorder dropped, as
    on a database older than it) by the client through fn_dot_iu_command_log: same rows."""
    calls = [open_args(db_url, gate=NEVER_FLIP[0]), open_args(db_url, ttl="0"),
             open_args(db_url, ttl="99999999999"), open_args(db_url, actor=" "),
             close_args(db_url, gate="nope"), close_args(db_url, actor=""),
             ("watchdog", "--actor", "", "--url", db_url)]
    for argv in calls:
        assert gates(capsys, *argv)[0] == 1
    by_recorder = recorded_rows(db)
    db.execute(f"DROP FUNCTION public.{RECORDER}")
    for argv in calls:
        assert gates(capsys, *argv)[0] == 1
    by_logger = recorded_rows(db)[len(calls):]
    assert len(by_recorder) == len(calls)
    assert by_logger == by_recorder


def test_an_invalid_actor_is_recorded_as_invalid_by_the_recorder(db, db_url, capsys):
    code, _, err = gates(capsys, *open_args(db_url, actor="al\u200bice"))
    assert code == 1 and "refused (SQLSTATE 22023)" in err and "recorded as refused run" in err
    (name, _, status, actor, _, evidence), = recorded_rows(db)
    assert (name, status, actor) == ("dot_iu_gate_open", "refused", "(invalid actor)")
    assert evidence["actor_invalid"] is True and "al\u200bice" not in json.dumps(evidence)


# --- a real gate operator login -----------------------------------------------------------------

@pytest.fixture
def operator_url(pg, db_name):
    """The URL of a fresh LOGIN role that is a member of dot_iu_gate_operator, and nothing
    else (the cluster trusts every login); dropped after the test."""
    name = f"op_{os.getpid()}_{next(_logins)}"
    pg.admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE dot_iu_gate_operator").format(
        sql.Identifier(name)))
    yield f"postgresql://{name}@{pg.host}:{pg.port}/{db_name}", name
    pg.admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_a_gate_operator_login_runs_every_command_and_its_refusal_is_recorded_as_it(
        db, operator_url, capsys):
    url, login = operator_url
    code, _, err = gates(capsys, "status", "--url", url)
    assert (code, err) == (0, "")
    code, out, err = gates(capsys, *open_args(url))
    assert (code, err) == (0, "") and f"opened {GATE}" in out
    assert gates(capsys, "status", "--url", url)[0] == 1  # a gate is open: not all safe
    code, _, err = gates(capsys, *open_args(url, gate=NEVER_FLIP[0]))
    assert code == 1 and "refused (SQLSTATE 42501)" in err and "recorded as refused run" in err
    code, out, err = gates(capsys, *close_args(url))
    assert (code, err) == (0, "") and f"closed {GATE}" in out
    code, out, err = gates(capsys, "watchdog", "--actor", "cron@host", "--url", url)
    assert (code, err) == (0, "") and "nothing to close" in out
    assert gates(capsys, "status", "--url", url)[0] == 0
    pgtap.results_eq(db, "SELECT command_name, run_status, actor, session_login"
                     " FROM dot_iu_command_run ORDER BY run_id", [
                         ("dot_iu_gate_open", "applied", "alice", login),
                         ("dot_iu_gate_open", "refused", "alice", login),
                         ("dot_iu_gate_close", "applied", "alice", login)])
    pgtap.results_eq(db, "SELECT action, session_login FROM iu_gate_transition"
                     " ORDER BY transition_id", [("open", login), ("close", login)])
    refused = db.execute("SELECT has_function_privilege(%s, 'public.fn_dot_iu_command_log("
                         "text, text, text, text, text, jsonb, jsonb)', 'EXECUTE')",
                         (login,)).fetchone()[0]
    assert refused is False  # the refusal went through the recorder: the logger is not its
