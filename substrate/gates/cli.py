"""`substrate gates`: the bounded gate protocol (SPEC 3.4; docs/gates.md) from a shell or cron.

    substrate gates status [--gate GATE] [--json]
    substrate gates open GATE --approval ID --ttl SECONDS --actor NAME --reason TEXT [--json]
    substrate gates close GATE --actor NAME --reason TEXT [--json]
    substrate gates watchdog --actor NAME [--json]

Each command makes one call of ``substrate.gates.client`` (which records a refused or failed
call in the run ledger) and prints its result, a table or the function's jsonb.

Every command ends in bounded time: ``--connect-timeout`` (default $SUBSTRATE_CONNECT_TIMEOUT,
else 10 s) for a server that does not answer, ``--statement-timeout`` (default
$SUBSTRATE_STATEMENT_TIMEOUT, else 30 s) for a call that does not finish, and, for open, close
and watchdog, ``--lock-timeout`` (default 10s) for a gate row another transaction holds.

Exit codes: status 0 all safe, 1 not all safe; open and close 0 done, 1 refused or failed (a
timeout included; recorded in the ledger when it can be); watchdog (for cron) 0 nothing was
open, 3 closed something, 1 a call that failed; every command 2 when it could not check (bad
arguments, no database, a malformed URL, an unreachable or silent server). Errors print one
line with the SQLSTATE and message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from substrate import connect
from substrate.connect import EXIT_CANNOT_CHECK, EXIT_FINDING, EXIT_OK

LOCK_TIMEOUT_RE = re.compile(r"^[0-9]{1,9}(us|ms|s|min|h)?$")
EXIT_CLOSED_SOMETHING = 3  # the watchdog closed at least one gate


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


def _seconds(parse):
    """An argparse type from one of substrate.connect's timeout parsers."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = parse.__name__
    return convert


def register(parser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    actions = parser.add_subparsers(dest="action", required=True)

    def common(sub, lock=True):
        sub.add_argument("--url", help="database URL (default: $DATABASE_URL)")
        sub.add_argument("--json", action="store_true", help="print the function's jsonb result")
        sub.add_argument("--connect-timeout", type=_seconds(connect.connect_seconds),
                         metavar="SECONDS",
                         help=f"how long to wait for the server to answer (default "
                              f"${connect.CONNECT_TIMEOUT_ENV}, else "
                              f"{connect.DEFAULT_CONNECT_TIMEOUT})")
        sub.add_argument("--statement-timeout", type=_seconds(connect.statement_seconds),
                         metavar="SECONDS",
                         help=f"how long one call may run, 0 for no limit (default "
                              f"${connect.STATEMENT_TIMEOUT_ENV}, else "
                              f"{connect.DEFAULT_STATEMENT_TIMEOUT})")
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
    import psycopg

    from substrate.gates.client import describe

    prog = f"substrate gates {args.action}"
    try:
        conn = connect.connect(connect.resolve_url(args.url), application_name="substrate gates",
                               connect_timeout=args.connect_timeout,
                               statement_timeout=args.statement_timeout)
    except connect.CannotConnect as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    try:
        with conn:
            if args.action == "status":
                return _status(conn, args, prog)
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, false)",
                         (args.lock_timeout,))
            return _act(conn, args, prog)
    except psycopg.Error as error:
        sqlstate, message = describe(error)
        if not conn.broken:  # the session could not be set up (a lock timeout it refused)
            print(_one_line(f"{prog}: cannot set up the session (SQLSTATE {sqlstate}): "
                            f"{message}"), file=sys.stderr)
            return EXIT_CANNOT_CHECK
        print(_one_line(f"{prog}: failed (SQLSTATE {sqlstate}): {message}; the connection was "
                        "lost, nothing could be recorded"), file=sys.stderr)
        return EXIT_FINDING if args.action != "status" else EXIT_CANNOT_CHECK


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _timeout_hint(args, sqlstate: str | None) -> str:
    """What ran out, when a timeout ended the call: the command line then says why."""
    if sqlstate == "55P03" and getattr(args, "lock_timeout", None):
        return (f" (lock timeout {args.lock_timeout}: another transaction holds the gate's row;"
                " --lock-timeout)")
    if sqlstate == connect.STATEMENT_TIMEOUT_SQLSTATE:
        seconds = connect.timeouts(None, args.statement_timeout)[1]
        return (f" (statement timeout {connect.describe_seconds(seconds)}; --statement-timeout"
                f" or ${connect.STATEMENT_TIMEOUT_ENV})")
    return ""


def _status(conn, args, prog) -> int:
    import psycopg

    from substrate.gates.client import REFUSAL_SQLSTATES, describe, status

    try:
        report = status(conn, args.gate)
    except psycopg.Error as error:
        if conn.broken:
            raise
        sqlstate, message = describe(error)
        outcome = "refused" if sqlstate in REFUSAL_SQLSTATES else "failed"
        print(_one_line(f"{prog}: {outcome} (SQLSTATE {sqlstate}): {message}"
                        f"{_timeout_hint(args, sqlstate)}"), file=sys.stderr)
        return EXIT_CANNOT_CHECK
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_status(report))
    return EXIT_OK if report["all_safe"] else EXIT_FINDING


def _act(conn, args, prog) -> int:
    from substrate.gates.client import GateError, call

    try:
        result = call(conn, args.action, **_params(args))
    except GateError as error:
        if error.run_id is not None:
            audit = f"recorded as {error.status} run {error.run_id}"
        else:
            audit = f"could not record the {error.status} call ({error.record_error})"
        print(_one_line(f"{prog}: {error}{_timeout_hint(args, error.sqlstate)}; {audit}"),
              file=sys.stderr)
        return EXIT_FINDING
    print(json.dumps(result, indent=2, sort_keys=True) if args.json
          else f"{prog}: {format_result(args.action, result)}")
    if args.action == "watchdog" and result:
        return EXIT_CLOSED_SOMETHING
    return EXIT_OK
