"""`substrate gates`: the bounded gate protocol (SPEC 3.4) from a shell or from cron.

    substrate gates status [--gate GATE] [--json]
    substrate gates open GATE --approval ID --ttl SECONDS --actor NAME --reason TEXT [--json]
    substrate gates close GATE --actor NAME --reason TEXT [--json]
    substrate gates watchdog --actor NAME [--json]

Each command calls one ``public.fn_iu_gate_*`` function in a transaction of its own; the
function audits an open, a close or a watchdog close twice (``iu_gate_transition`` and the run
ledger) in that transaction. A call the database refuses raises and writes nothing, so this
module rolls back and records one ``refused`` run-ledger row (SQLSTATE and message in its
evidence, a digest of the parameters, never the approval id or the reason) in a new
transaction; any other database error is recorded the same way as ``failed``.

Exit codes: status 0 all safe, 1 not all safe, 2 could not check; open and close 0 done,
1 refused or failed, 2 could not connect or bad arguments; watchdog (for cron) 0 nothing was
open, 3 closed something, 1 any error. Errors print the SQLSTATE and message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from substrate.dburl import to_conninfo

# What the protocol raises when it refuses a call (SPEC 3.4); 22003 is an out-of-range TTL that
# does not even fit the integer parameter. Any other error is recorded as 'failed'.
REFUSAL_SQLSTATES = frozenset({"42501", "22023", "23514", "55000", "22003"})
# The ledger refuses a blank actor; a refusal for a blank actor is recorded under this name.
MISSING_ACTOR = "(no actor given)"
LOCK_TIMEOUT_RE = re.compile(r"^[0-9]{1,9}(us|ms|s|min|h)?$")
EXIT_OK, EXIT_ERROR, EXIT_UNAVAILABLE, EXIT_CLOSED_SOMETHING = 0, 1, 2, 3

# The same parameter digests the fn_iu_gate_* functions write (their v1 files), so a refused
# row and an applied row for the same parameters carry the same params_digest.
DIGESTS = {
    "open": (
        "pg_catalog.md5(pg_catalog.jsonb_build_object('gate', %(gate)s::text, "
        "'approval_id', %(approval_id)s::text, 'actor', %(actor)s::text, "
        "'reason', %(reason)s::text, 'ttl_seconds', %(ttl_seconds)s::numeric)::text)"
    ),
    "close": (
        "pg_catalog.md5(pg_catalog.jsonb_build_object('gate', %(gate)s::text, "
        "'actor', %(actor)s::text, 'reason', %(reason)s::text)::text)"
    ),
    "watchdog": "pg_catalog.md5(pg_catalog.jsonb_build_object('actor', %(actor)s::text)::text)",
}
CALLS = {
    "open": (
        "SELECT public.fn_iu_gate_open(%(gate)s, %(approval_id)s, %(actor)s, %(reason)s, "
        "%(ttl_seconds)s::integer)"
    ),
    "close": "SELECT public.fn_iu_gate_close(%(gate)s, %(actor)s, %(reason)s)",
    "watchdog": "SELECT public.fn_iu_gate_watchdog(%(actor)s)",
}
COMMANDS = {
    "open": "dot_iu_gate_open",
    "close": "dot_iu_gate_close",
    "watchdog": "dot_iu_gate_watchdog",
}


@dataclass(eq=False)
class GateError(Exception):
    """A gate call the database refused (or that failed), and how it was recorded."""

    action: str
    status: str  # 'refused' or 'failed'
    sqlstate: str | None
    message: str
    run_id: int | None = None  # the ledger row recording it, when recording worked
    record_error: str | None = None  # why recording it failed, when it did

    def __str__(self) -> str:
        return f"{self.status} (SQLSTATE {self.sqlstate}): {self.message}"


def _describe(error: psycopg.Error) -> tuple[str | None, str]:
    message = error.diag.message_primary if error.diag else None
    return error.sqlstate, message or str(error).strip() or type(error).__name__


def status(conn: psycopg.Connection, gate: str | None = None) -> dict:
    """fn_iu_gate_verify_closed as a dict; writes nothing."""
    return conn.execute("SELECT public.fn_iu_gate_verify_closed(%s)", (gate,)).fetchone()[0]


def call(conn: psycopg.Connection, action: str, **params: object) -> object:
    """Run one protocol call (open, close, watchdog) in its own transaction; its jsonb result.

    ``conn`` must be in autocommit mode. On a database error the transaction is rolled back,
    the refusal (or failure) is recorded in a new transaction and GateError is raised.
    When the connection itself is lost the error propagates: nothing can be recorded.
    """
    try:
        with conn.transaction():
            return conn.execute(CALLS[action], params).fetchone()[0]
    except psycopg.Error as error:
        if conn.closed or conn.broken:
            raise
        sqlstate, message = _describe(error)
    status_ = "refused" if sqlstate in REFUSAL_SQLSTATES else "failed"
    raise _recorded(conn, action, status_, sqlstate, message, params)


def _recorded(conn, action, status_, sqlstate, message, params) -> GateError:
    """Record a refused or failed call in a transaction of its own; the error to raise."""
    actor = params.get("actor")
    actor_given = isinstance(actor, str) and actor.strip() != ""
    evidence: dict[str, object] = {"sqlstate": sqlstate, "message": message}
    if "gate" in params:
        evidence["gate"] = params["gate"]
    if not actor_given:
        evidence["actor_missing"] = True
    error = GateError(action, status_, sqlstate, message)
    try:
        with conn.transaction():
            error.run_id = conn.execute(
                "SELECT public.fn_dot_iu_command_log(%(command)s, 'apply', %(status)s, "
                f"%(ledger_actor)s, {DIGESTS[action]}, %(evidence)s)",
                {**params, "command": COMMANDS[action], "status": status_,
                 "ledger_actor": actor if actor_given else MISSING_ACTOR,
                 "evidence": Jsonb(evidence)},
            ).fetchone()[0]
    except psycopg.Error as record_error:
        code, text = _describe(record_error)
        error.record_error = f"SQLSTATE {code}: {text}"
    return error


# ---------------------------------------------------------------------------
# Text output
# ---------------------------------------------------------------------------


def _gate_state(entry: dict) -> tuple[str, str]:
    """(state, window) columns of the status table for one gate."""
    window = entry.get("window")
    if entry["class"] == "never-flip":
        return ("intact" if entry["safe"] else "FLIPPED"), "-"
    if not entry["present"]:
        return "missing", "-"
    if entry["orphaned"]:
        why = "window expired" if window else "no open window on record"
        return "ORPHANED", f"{why}; the watchdog closes it"
    if entry["open"]:
        return "OPEN", f"until {window['expires_at']} (approval {window['approval_id']})"
    return "closed", "-"


def format_status(report: dict) -> str:
    rows = [("GATE", "CLASS", "VALUE", "STATE", "WINDOW")]
    for entry in report["gates"]:
        value = "<missing>" if entry["value"] is None else entry["value"]
        rows.append((entry["gate"], entry["class"], value, *_gate_state(entry)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        lines.append("  ".join((*cells, row[4])))
    lines.append(
        f"all_safe: {str(report['all_safe']).lower()}   "
        f"all_governed_closed: {str(report['all_governed_closed']).lower()}   "
        f"never_flip_intact: {str(report['never_flip_intact']).lower()}"
    )
    return "\n".join(line.rstrip() for line in lines)


def format_result(action: str, result: object) -> str:
    if action == "open":
        window = result["window"]
        return (f"opened {result['gate']} until {window['expires_at']} "
                f"(ttl {window['ttl_seconds']}s, approval {window['approval_id']}; "
                f"run {result['run_id']}, transition {result['transition_id']})")
    if action == "close":
        what = (f"closed {result['gate']} (was {result['prev_value']!r})" if result["changed"]
                else f"{result['gate']} was already closed; recorded")
        return f"{what} (run {result['run_id']}, transition {result['transition_id']})"
    if not result:
        return "nothing to close: no governable gate is open without a live window"
    lines = [f"closed {len(result)} gate(s):"]
    for entry in result:
        cause = (f"window expired at {entry['expires_at']}" if entry["cause"] == "expired"
                 else "open with no open window on record")
        lines.append(f"  {entry['gate']}: {cause} "
                     f"(run {entry['run_id']}, transition {entry['transition_id']})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _lock_timeout(text: str) -> str:
    if not LOCK_TIMEOUT_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 5s, 500ms, 1min")
    return text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gates", help="open, close, verify and watchdog the gates (bounded gate protocol)",
        description=__doc__.split("\n\n")[0],
    )
    actions = parser.add_subparsers(dest="action", required=True)

    def common(sub, lock=True):
        sub.add_argument("--url", help="database URL (default: $DATABASE_URL)")
        sub.add_argument("--json", action="store_true", help="print the function's jsonb result")
        if lock:
            sub.add_argument("--lock-timeout", type=_lock_timeout, default="10s",
                             help="how long to wait for the gate's row lock (default 10s)")
        sub.set_defaults(handler=_main)

    sub = actions.add_parser("status", help="fn_iu_gate_verify_closed as a table")
    sub.add_argument("--gate", help="report only this gate")
    common(sub, lock=False)

    sub = actions.add_parser("open", help="open one governable gate for an approved window")
    sub.add_argument("gate")
    sub.add_argument("--approval", required=True, help="the approval (e.g. change ticket) id")
    sub.add_argument("--ttl", type=int, required=True, help="window length, 1..3600 seconds")
    sub.add_argument("--actor", required=True, help="who opens it")
    sub.add_argument("--reason", required=True, help="why")
    common(sub)

    sub = actions.add_parser("close", help="close one governable gate")
    sub.add_argument("gate")
    sub.add_argument("--actor", required=True, help="who closes it")
    sub.add_argument("--reason", required=True, help="why")
    common(sub)

    sub = actions.add_parser("watchdog", help="close expired and orphaned gates (for cron)")
    sub.add_argument("--actor", required=True, help="who runs it, e.g. cron@host")
    common(sub)


def _params(args) -> dict:
    if args.action == "open":
        return {"gate": args.gate, "approval_id": args.approval, "actor": args.actor,
                "reason": args.reason, "ttl_seconds": args.ttl}
    if args.action == "close":
        return {"gate": args.gate, "actor": args.actor, "reason": args.reason}
    return {"actor": args.actor}


def _main(args) -> int:
    prog = f"substrate gates {args.action}"
    # The watchdog's contract with cron: 0 nothing open, 3 closed something, 1 any error.
    unavailable = EXIT_ERROR if args.action == "watchdog" else EXIT_UNAVAILABLE
    url = args.url or os.environ.get("DATABASE_URL")
    if not url:
        print(f"{prog}: no database: pass --url or set DATABASE_URL", file=sys.stderr)
        return unavailable
    try:
        conn = psycopg.connect(to_conninfo(url), autocommit=True,
                               application_name="substrate gates")
    except psycopg.Error as error:
        sqlstate, message = _describe(error)
        where = f"SQLSTATE {sqlstate}" if sqlstate else "no SQLSTATE: the server was not reached"
        print(f"{prog}: cannot connect ({where}): {' '.join(message.split())}", file=sys.stderr)
        return unavailable
    try:
        with conn:
            if args.action == "status":
                return _status(conn, args, prog)
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, false)",
                         (args.lock_timeout,))
            return _act(conn, args, prog)
    except psycopg.Error as error:  # the connection broke mid-call: nothing could be recorded
        sqlstate, message = _describe(error)
        print(f"{prog}: failed (SQLSTATE {sqlstate}): {message}", file=sys.stderr)
        return EXIT_ERROR if args.action != "status" else EXIT_UNAVAILABLE


def _status(conn, args, prog) -> int:
    try:
        report = status(conn, args.gate)
    except psycopg.Error as error:
        if conn.broken:
            raise
        sqlstate, message = _describe(error)
        print(f"{prog}: refused (SQLSTATE {sqlstate}): {message}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_status(report))
    return EXIT_OK if report["all_safe"] else EXIT_ERROR


def _act(conn, args, prog) -> int:
    try:
        result = call(conn, args.action, **_params(args))
    except GateError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        if error.run_id is not None:
            print(f"{prog}: recorded as {error.status} run {error.run_id}", file=sys.stderr)
        else:
            print(f"{prog}: could not record the {error.status} call ({error.record_error})",
                  file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(result, indent=2, sort_keys=True) if args.json
          else f"{prog}: {format_result(args.action, result)}")
    if args.action == "watchdog" and result:
        return EXIT_CLOSED_SOMETHING
    return EXIT_OK
