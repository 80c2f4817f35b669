"""`substrate proof`: the original design's proof, run live after the report of ``make demo``
(SPEC 3.8; docs/runtime.md, docs/gates.md).

    substrate proof [--url URL] [--scratch-db NAME]
    python -m substrate.demo.proof [--url URL] [--scratch-db NAME]

On a scratch database of the same server as ``--url`` (recreated on every run by
``substrate.demo.proof_db``, with IU Core stand-ins clearly labelled as such), four steps:

- P1 open the runtime gate through the bounded gate protocol, with an approval;
- P2 plan, apply (bound to that plan) and verify ``dot_iu_healthcheck`` through the operator
  runtime;
- P3 apply ``dot_iu_add_piece`` while the composer gate is shut: refused, and audited;
- P4 close the runtime gate, and print the registry rows of the two commands and the health row.

Every gate ends closed, even when a step fails: a ``finally`` closes through the protocol any
governable gate still open and prints what ``fn_iu_gate_verify_closed`` then says. The proof
holds when every step answers as expected and the registry reads ``dot_iu_healthcheck`` 3 runs,
1 applied, last ``verified``, and ``dot_iu_add_piece`` 1 run, refused.

Exit codes: 0 the proof holds; 1 it does not (the line on stderr says which step); 2 it could
not run (no database, a malformed URL, an unreachable server, a scratch database that could
not be made). Psycopg is imported when the proof runs, not before.
"""

from __future__ import annotations

import argparse
import json
import sys

from substrate import connect

PROG = "substrate proof"
ACTOR = "make-demo"
APPROVAL = "DEMO-PROOF"
TTL_SECONDS = 300
REASON = "substrate proof: the original design's four steps, on stand-ins"
RUNTIME_GATE = "iu_core.operator_runtime_enabled"
COMPOSER_GATE = "iu_core.composer_enabled"
HEALTHCHECK, ADD_PIECE = "dot_iu_healthcheck", "dot_iu_add_piece"
# Demo values: no collection or piece behind them, and no call ever reaches the stand-in (the
# composer gate refuses first; the stand-in itself would refuse too).
ADD_PIECE_PARAMS = {"collection_id": "00000000-0000-4000-8000-00000000c0de",
                    "piece_id": "00000000-0000-4000-8000-0000000091ec", "position": 1}
EXPECTED = {
    HEALTHCHECK: {"total_runs": 3, "applied_runs": 1, "last_status": "verified"},
    ADD_PIECE: {"total_runs": 1, "refused_runs": 1, "last_status": "refused"},
}
REGISTRY_COLUMNS = ("command_name", "total_runs", "applied_runs", "refused_runs",
                    "failed_runs", "last_status")


class NotHeld(Exception):
    """A step answered otherwise than the proof expects; the message says which and how."""


# ---------------------------------------------------------------------------
# The four steps
# ---------------------------------------------------------------------------


def prove(conn, runtime, say) -> dict:
    """P1-P4 on a scratch database: ``conn`` for the gate protocol and the views (autocommit),
    ``runtime`` an OperatorRuntime on the same database, ``say`` prints one line. The registry
    rows of the two commands; NotHeld when a step answers otherwise than expected."""
    _open_runtime_gate(conn, say)
    _healthcheck(runtime, say)
    _refused_add_piece(conn, runtime, say)
    return _close_and_read(conn, say)


def _open_runtime_gate(conn, say) -> None:
    from substrate.gates.cli import format_result
    from substrate.gates.client import GateError, call

    say("P1  open the runtime gate through the protocol, with an approval")
    say(f"    asked:    fn_iu_gate_open('{RUNTIME_GATE}', approval '{APPROVAL}', "
        f"ttl {TTL_SECONDS} s, actor '{ACTOR}')")
    try:
        result = call(conn, "open", gate=RUNTIME_GATE, approval_id=APPROVAL, actor=ACTOR,
                      reason=REASON, ttl_seconds=TTL_SECONDS)
    except GateError as error:
        say(f"    answered: {error} (run {error.run_id})")
        raise NotHeld(f"P1: the runtime gate did not open: {error}") from None
    say(f"    answered: {format_result('open', result)}")


def _healthcheck(runtime, say) -> None:
    say(f"P2  plan, apply and verify {HEALTHCHECK} through the operator runtime")
    planned = _expect(say, "plan", "planned", runtime.plan(HEALTHCHECK, {}, ACTOR))
    applied = _expect(say, f"apply bound to plan {planned.run_id}", "applied", runtime.apply(
        HEALTHCHECK, {}, ACTOR, plan_run_id=planned.run_id,
        correlation_id=planned.correlation_id))
    for row in applied.rows:
        say(f"      the stand-in answered: {json.dumps(row, sort_keys=True)}")
    _expect(say, "verify", "verified", runtime.verify(
        HEALTHCHECK, {}, ACTOR, correlation_id=planned.correlation_id))
    say(f"    the three runs share one correlation id: {planned.correlation_id}")


def _refused_add_piece(conn, runtime, say) -> None:
    say(f"P3  apply {ADD_PIECE} with the composer gate shut")
    say(f"    asked:    apply {ADD_PIECE} ({', '.join(ADD_PIECE_PARAMS)}: demo values)")
    refused = _expect(say, "answered", "refused",
                      runtime.apply(ADD_PIECE, ADD_PIECE_PARAMS, ACTOR))
    if refused.run_id is None:
        raise NotHeld(f"P3: the refusal of {ADD_PIECE} was not recorded")
    mode, status, evidence = conn.execute(
        "SELECT run_mode, run_status, evidence FROM public.dot_iu_command_run WHERE run_id = %s",
        (refused.run_id,)).fetchone()
    say(f"    audited:  run {refused.run_id} is {mode}/{status}, evidence reason "
        f"{evidence.get('reason')!r}, shut gates {evidence.get('shut_gates')}")
    if evidence.get("shut_gates") != [COMPOSER_GATE]:
        raise NotHeld(f"P3: refused, but not for the composer gate: {evidence}")


def _close_and_read(conn, say) -> dict:
    from substrate.gates.cli import format_result
    from substrate.gates.client import GateError, call

    say("P4  close the runtime gate, then read the registry")
    say(f"    asked:    fn_iu_gate_close('{RUNTIME_GATE}', actor '{ACTOR}')")
    try:
        result = call(conn, "close", gate=RUNTIME_GATE, actor=ACTOR, reason=REASON)
    except GateError as error:
        say(f"    answered: {error} (run {error.run_id})")
        raise NotHeld(f"P4: the runtime gate did not close: {error}") from None
    say(f"    answered: {format_result('close', result)}")
    rows = _registry(conn)
    say("    v_dot_iu_command_registry:")
    say(_table([REGISTRY_COLUMNS, *[[row[c] for c in REGISTRY_COLUMNS] for row in rows.values()]],
               indent=6))
    cursor = conn.execute("SELECT * FROM public.v_dot_iu_command_run_health")
    health = dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))
    say("    v_dot_iu_command_run_health:")
    say("      " + ", ".join(f"{key} {value}" for key, value in health.items()
                             if not key.endswith("_at")))
    return rows


def _expect(say, label: str, status: str, result):
    """Print one runtime call's answer; NotHeld when its status is not ``status``."""
    run = f"run {result.run_id}" if result.run_id is not None else "not recorded"
    say(f"    {(label + ':').ljust(9)} {result.status} ({run}): {' '.join(result.message.split())}")
    if result.status != status:
        raise NotHeld(f"{result.mode} {result.command}: expected {status}, got {result.status} "
                      f"({result.message})")
    return result


def _registry(conn) -> dict:
    cursor = conn.execute(
        f"SELECT {', '.join(REGISTRY_COLUMNS)} FROM public.v_dot_iu_command_registry"
        " WHERE command_name = ANY(%s) ORDER BY total_runs DESC, command_name",
        (list(EXPECTED),))
    return {row[0]: dict(zip(REGISTRY_COLUMNS, row, strict=True)) for row in cursor.fetchall()}


def check(rows: dict) -> list[str]:
    """How the registry rows differ from the expected outcome (empty: the proof holds)."""
    problems = []
    for command, expected in EXPECTED.items():
        have = rows.get(command, {})
        for column, want in expected.items():
            if have.get(column) != want:
                problems.append(f"{command}.{column}: expected {want!r}, found "
                                f"{have.get(column)!r}")
    return problems


def _table(rows, indent: int) -> str:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join((" " * indent + "  ".join(cell.ljust(width) for cell, width
                                               in zip(row, widths, strict=True))).rstrip()
                     for row in cells)


# ---------------------------------------------------------------------------
# Every gate ends closed
# ---------------------------------------------------------------------------


def close_every_gate(url: str, say) -> bool:
    """Close, through the protocol, every governable gate that reads 'true' (a fresh
    connection: the proof's own may be the thing that broke); whether all are closed now."""
    from substrate.gates.client import GateError, call, status

    with connect.connect(url, application_name="substrate proof") as conn:
        closed = []
        for entry in status(conn)["gates"]:
            if entry["class"] == "governable" and entry["value"] == "true":
                try:
                    call(conn, "close", gate=entry["gate"], actor=ACTOR,
                         reason="substrate proof: every gate ends closed")
                    closed.append(entry["gate"])
                except GateError as error:
                    say(f"         could not close {entry['gate']}: {error}")
        report = status(conn)
    say(f"finally: every gate ends closed, whatever happened above: "
        f"{'closed ' + ', '.join(closed) if closed else 'nothing was left open'}")
    say("         fn_iu_gate_verify_closed: " + ", ".join(
        f"{key} {str(report[key]).lower()}"
        for key in ("all_safe", "all_governed_closed", "never_flip_intact")))
    return bool(report["all_governed_closed"])


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def register(parser) -> None:
    from substrate.demo.proof_db import DEFAULT_NAME

    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--url", help="the demo database; the proof runs on a scratch database "
                        "of the same server (default: $DATABASE_URL)")
    parser.add_argument("--scratch-db", default=DEFAULT_NAME, metavar="NAME",
                        help=f"the scratch database, recreated on every run (default "
                             f"{DEFAULT_NAME})")
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    import psycopg

    from substrate.demo import proof_db
    from substrate.runtime import ExecutorUnavailable, OperatorRuntime, psycopg_executor

    try:
        url = proof_db.recreate(connect.resolve_url(args.url), args.scratch_db)
    except (connect.CannotConnect, proof_db.CannotPrepare) as error:
        print(f"{PROG}: could not run: {error}", file=sys.stderr)
        return connect.EXIT_CANNOT_CHECK
    print(f"{PROG}: the original design's four steps, live, on the scratch database "
          f"{args.scratch_db}")
    print(f"    (recreated, migrated to head, and given the IU Core STAND-INS of "
          f"substrate/demo/{proof_db.STANDINS.name}: a demo, not IU Core)")
    verdict, code = "", connect.EXIT_OK
    try:
        with connect.connect(url, application_name="substrate proof") as conn:
            runtime = OperatorRuntime(psycopg_executor(
                connect.connect(url, application_name="substrate proof runtime")))
            try:
                problems = check(prove(conn, runtime, print))
            finally:
                runtime.executor.close()
        if problems:
            verdict, code = "; ".join(problems), connect.EXIT_FINDING
    except NotHeld as error:
        verdict, code = str(error), connect.EXIT_FINDING
    except (connect.CannotConnect, ExecutorUnavailable, psycopg.Error) as error:
        verdict, code = f"could not run: {error}", connect.EXIT_CANNOT_CHECK
    finally:
        try:
            if not close_every_gate(url, print) and code == connect.EXIT_OK:
                verdict, code = "a governable gate is still open", connect.EXIT_FINDING
        except (connect.CannotConnect, psycopg.Error) as error:
            print(f"finally: could not check that every gate is closed: {error}")
            verdict = verdict or f"could not check that every gate is closed: {error}"
            code = code or connect.EXIT_CANNOT_CHECK
    expected = (f"{HEALTHCHECK} 3 runs / 1 applied / last verified; "
                f"{ADD_PIECE} 1 run, refused; every gate closed")
    if code == connect.EXIT_OK:
        print(f"expected: {expected}: the proof holds")
    else:
        print(f"expected: {expected}")
        print(f"{PROG}: {'does not hold: ' if code == 1 else ''}{' '.join(verdict.split())}",
              file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m substrate.demo.proof")
    register(parser)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
