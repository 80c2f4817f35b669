"""`substrate run`: the operator runtime from a shell (SPEC 3.8; docs/runtime.md).

    substrate run plan|apply|verify COMMAND [--param NAME=VALUE ...] --actor NAME [--url URL]
        [--correlation-id UUID] [--plan RUN_ID] [--executor psycopg|psql] [--json]
    substrate run reversal COMMAND [--url URL] [--executor psycopg|psql] [--json]

Each of plan, apply and verify is one invocation of ``substrate.runtime.OperatorRuntime``,
which records exactly one run-ledger row for it (refusals included). Values are given as text
and typed from the catalogued signature; arrays and jsonb are written as JSON
(``--param piece_ids='["…", "…"]'``). ``--plan`` (apply only) binds the apply to a planned run.
Without ``--correlation-id`` a new one is made (a plan-bound apply inherits its plan's).
``--executor psql`` runs the ``psql`` found on PATH with the URL's host, port, user, database
and password.

Exit codes: 0 planned, applied or verified (reversal: reported); 1 refused or failed
(reversal: not catalogued); 2 could not run (bad arguments, no database, a malformed URL, an
unreachable server, a commit whose outcome is unknown). One line on stderr for every error,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from substrate import connect
from substrate.connect import EXIT_CANNOT_CHECK, EXIT_FINDING, EXIT_OK

MODES = {
    "plan": "resolve, type and record a planned run; runs no command SQL",
    "apply": "run the governed statement and its applied row in one transaction",
    "verify": "a read-only probe (validate the collection_id, else healthcheck) and a verified row",
}
ROWS_SHOWN = 5
ROW_WIDTH = 200


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a uuid") from None


def _run_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 10**18:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id")
    return int(text)


def register(parser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    modes = parser.add_subparsers(dest="mode", required=True)

    def common(sub):
        sub.add_argument("name", metavar="COMMAND", help="a catalogued command, e.g. "
                         "dot_iu_healthcheck")
        sub.add_argument("--url", help="database URL (default: $DATABASE_URL)")
        sub.add_argument("--executor", choices=("psycopg", "psql"), default="psycopg",
                         help="how to reach the database (default psycopg)")
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.set_defaults(handler=_main)

    for mode, help_ in MODES.items():
        sub = modes.add_parser(mode, help=help_)
        common(sub)
        sub.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="a parameter of the command (repeat); JSON for arrays and jsonb")
        sub.add_argument("--actor", required=True, help="who runs it (recorded as a claim)")
        sub.add_argument("--correlation-id", type=_uuid,
                         help="the id shared by one plan -> apply -> verify chain")
        if mode == "apply":
            sub.add_argument("--plan", type=_run_id, dest="plan_run_id", metavar="RUN_ID",
                             help="apply exactly what this planned run planned (once)")
    sub = modes.add_parser("reversal", help="the inverse command and rollback note; runs nothing")
    common(sub)


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError("--param takes NAME=VALUE")
        if name in params:
            raise ValueError(f"--param {name} given twice")
        params[name] = value
    return params


def _executor(args):
    """The executor the arguments ask for; CannotConnect when there is no database."""
    from substrate.runtime import psql_executor, psycopg_executor

    url = connect.resolve_url(args.url)
    if args.executor == "psycopg":
        return psycopg_executor(connect.connect(url, application_name="substrate run"))
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(connect.to_conninfo(url))
    return psql_executor(info.get("host"), info.get("port"), info.get("user"),
                         info.get("dbname"), password=info.get("password"))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _main(args) -> int:
    from substrate.runtime import ExecutorUnavailable, OutcomeUnknown

    prog = f"substrate run {args.mode}"
    try:
        params = _params(getattr(args, "param", []))
        executor = _executor(args)
    except (ValueError, connect.CannotConnect) as error:
        print(f"{prog}: {_one_line(error)}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    correlation = getattr(args, "correlation_id", None)
    if correlation is None and getattr(args, "plan_run_id", None) is None:
        correlation = str(uuid.uuid4())
    try:
        if args.mode == "reversal":
            return _reversal(executor, args, prog)
        return _run(executor, args, prog, params, correlation)
    except OutcomeUnknown as error:
        where = (f"correlation {error.correlation_id}" if error.correlation_id
                 else f"plan_run_id {error.plan_run_id}")
        print(f"{prog}: outcome unknown: {_one_line(error)}; an auditor finds the applied row, "
              f"if it committed, by {where} in dot_iu_command_run", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    except ExecutorUnavailable as error:
        print(f"{prog}: {_one_line(error)}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    finally:
        executor.close()


def _run(executor, args, prog, params, correlation) -> int:
    from substrate.runtime import OperatorRuntime

    runtime = OperatorRuntime(executor)
    options = {"correlation_id": correlation}
    if args.mode == "apply":
        options["plan_run_id"] = args.plan_run_id
    result = getattr(runtime, args.mode)(args.name, params, args.actor, **options)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    elif result.ok:
        print(f"{prog}: {_summary(result)}")
        for row in result.rows[:ROWS_SHOWN]:
            text = json.dumps(row, ensure_ascii=False, sort_keys=True)
            print("  " + (text if len(text) <= ROW_WIDTH else text[:ROW_WIDTH - 3] + "..."))
        if len(result.rows) > ROWS_SHOWN:
            print(f"  ... {len(result.rows) - ROWS_SHOWN} more row(s) (--json shows all)")
    else:
        print(f"{prog}: {_summary(result)}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FINDING


def _summary(result) -> str:
    run = f"run {result.run_id}" if result.run_id is not None else "not recorded"
    correlation = f", correlation {result.correlation_id}" if result.correlation_id else ""
    state = f" (SQLSTATE {result.sqlstate})" if result.sqlstate else ""
    return _one_line(f"{result.status}{state} {result.command} ({run}{correlation}): "
                     f"{result.message}")


def _reversal(executor, args, prog) -> int:
    from substrate.runtime import CatalogError, DatabaseError, OperatorRuntime

    try:
        reversal = OperatorRuntime(executor).reversal(args.name)
    except (CatalogError, DatabaseError) as error:
        print(f"{prog}: {_one_line(error)}", file=sys.stderr)
        return EXIT_FINDING
    if args.json:
        print(json.dumps(reversal.as_dict(), indent=2, sort_keys=True))
    else:
        inverse = reversal.inverse_command or "none"
        print(f"{prog}: {reversal.command}: inverse {inverse}; {reversal.note}")
    return EXIT_OK
