"""`substrate run`: the operator runtime from a shell (SPEC 3.8; docs/runtime.md).

    substrate run plan|apply|verify COMMAND [--param NAME=VALUE ...] --actor NAME [--url URL]
        [--correlation-id UUID] [--plan RUN_ID] [--executor psycopg|psql] [--json]
    substrate run reversal COMMAND [--url URL] [--executor psycopg|psql] [--json]

Each of plan, apply and verify is one invocation of ``substrate.runtime.OperatorRuntime``,
which records exactly one run-ledger row for it (refusals included). Values are given as text
and typed from the catalogued signature; arrays and jsonb are written as JSON
(``--param piece_ids='["…", "…"]'``). ``--plan`` (apply only) binds the apply to a planned run.
Without ``--correlation-id`` a new one is made (a plan-bound apply inherits its plan's).
``--executor psql`` runs the ``psql`` found on PATH with every setting of the URL (sslmode,
sslrootcert, options and the rest travel with host, port, user and database; the password in
PGPASSWORD, never on a command line; a URL with ``sslpassword`` is refused for psql). Both
executors bound each statement by ``$SUBSTRATE_STATEMENT_TIMEOUT`` when it is set (else 5
minutes).

Exit codes: 0 planned, applied or verified (reversal: reported); 1 refused or failed, and
recorded, but for a command the catalog does not hold, which the ledger cannot record (its line
says "not recorded") (reversal: not catalogued); 2 could not run (bad arguments, no database,
a malformed URL, an unreachable server, a commit whose outcome is unknown, an argument that is
not valid text).
One line on stderr for every error, never a traceback. Output that cannot be written (a reader
that closed the pipe, a full disk) does not change the exit code: the run happened and is
recorded; characters the terminal's encoding lacks are written as backslash escapes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
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
# Settings psql cannot be given without putting a secret on its command line.
PSQL_SECRET_KEYS = frozenset({"password", "sslpassword"})
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (CSI is \x9b)


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
    connect_s, statement_s = connect.timeouts(statement_default=300.0)
    statement_timeout = f"{round(statement_s * 1000)}ms"
    if args.executor == "psycopg":
        return psycopg_executor(connect.connect(url, application_name="substrate run",
                                                connect_timeout=connect_s,
                                                statement_timeout=statement_s),
                                statement_timeout=statement_timeout)
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(connect.to_conninfo(url))
    except Exception as error:  # psycopg's ProgrammingError: a malformed URL
        raise connect.CannotConnect(f"malformed database URL: {error}") from None
    if "sslpassword" in info:
        raise ValueError("the psql executor cannot take a URL with sslpassword (it would go on "
                         "psql's command line): use --executor psycopg")
    settings = {key: str(value) for key, value in info.items()
                if key not in PSQL_SECRET_KEYS | {"host", "port", "user", "dbname"}}
    return psql_executor(info.get("host"), info.get("port"), info.get("user"),
                         info.get("dbname"), password=info.get("password"),
                         connect_timeout=int(settings.pop("connect_timeout", connect_s)),
                         statement_timeout=statement_timeout, extra=settings)


def _one_line(text: str) -> str:
    return _printable(" ".join(str(text).split()))


def _printable(text: str) -> str:
    """``text`` with every control character as an escape (``\\x1b``): a database message or a
    result row can quote a value, and none of it may steer the operator's terminal."""
    return UNPRINTABLE.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def _not_text(args) -> str | None:
    """COMMAND or --url when it is not valid text (bytes that are not UTF-8): no call can be
    made of it. (An actor or a parameter that is not is the runtime's to refuse, and record.)"""
    from substrate.runtime.runtime import SURROGATE

    return next((option for option, text in (("COMMAND", args.name), ("--url", args.url))
                 if isinstance(text, str) and SURROGATE.search(text)), None)


def _main(args) -> int:
    from substrate.runtime import ExecutorUnavailable, OutcomeUnknown

    for stream in (sys.stdout, sys.stderr):  # never an encoding error on the way out
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # psycopg warns on its own logger when a pipeline ends on a lost connection ("error ignored
    # terminating ..."); the loss itself is this command's one line on stderr.
    driver = logging.getLogger("psycopg")
    if not any(isinstance(handler, logging.NullHandler) for handler in driver.handlers):
        driver.addHandler(logging.NullHandler())
    driver.propagate = False
    prog = f"substrate run {args.mode}"
    bad = _not_text(args)
    if bad:
        print(f"{prog}: {bad} is not valid text (bytes that are not UTF-8)", file=sys.stderr)
        return EXIT_CANNOT_CHECK
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
        where = " and ".join(
            [f"correlation {error.correlation_id}"] * bool(error.correlation_id)
            + [f"plan_run_id {error.plan_run_id}"] * (error.plan_run_id is not None))
        what = "the call's rows" if error.mode == "apply" else "the call's row"
        print(f"{prog}: outcome unknown: {_one_line(error)}; an auditor finds {what}, if "
              f"anything committed, by {where or 'its time and actor'} in dot_iu_command_run",
              file=sys.stderr)
        return EXIT_CANNOT_CHECK
    except ExecutorUnavailable as error:
        print(f"{prog}: {_one_line(error)}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    finally:
        executor.close()


def _written(code: int, prog: str, write) -> int:
    """``write()`` the output of a call that has happened; ``code`` whatever becomes of it. A
    reader that closed the pipe (``| head``) ends the output quietly; any other write error
    says so in one line on stderr."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    except OSError as error:
        _stdout_to_devnull()
        try:
            print(f"{prog}: the output could not be written ({_one_line(error)}); the run is "
                  f"recorded all the same", file=sys.stderr)
        except OSError:
            pass
    return code


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _run(executor, args, prog, params, correlation) -> int:
    from substrate.runtime import OperatorRuntime

    runtime = OperatorRuntime(executor)
    options = {"correlation_id": correlation}
    if args.mode == "apply":
        options["plan_run_id"] = args.plan_run_id
    result = getattr(runtime, args.mode)(args.name, params, args.actor, **options)
    return _written(EXIT_OK if result.ok else EXIT_FINDING, prog,
                    lambda: _print_result(result, args, prog))


def _print_result(result, args, prog) -> None:
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    elif result.ok:
        print(f"{prog}: {_summary(result)}")
        for row in result.rows[:ROWS_SHOWN]:
            text = _printable(json.dumps(row, ensure_ascii=False, sort_keys=True))
            print("  " + (text if len(text) <= ROW_WIDTH else text[:ROW_WIDTH - 3] + "..."))
        if len(result.rows) > ROWS_SHOWN:
            print(f"  ... {len(result.rows) - ROWS_SHOWN} more row(s) (--json shows all)")
    else:
        print(f"{prog}: {_summary(result)}", file=sys.stderr)


def _summary(result) -> str:
    run = f"run {result.run_id}" if result.run_id is not None else "not recorded"
    correlation = f", correlation {result.correlation_id}" if result.correlation_id else ""
    if result.plan_run_id is not None:
        correlation += f", plan {result.plan_run_id}"
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
    def write():
        if args.json:
            print(json.dumps(reversal.as_dict(), indent=2, sort_keys=True))
        else:
            inverse = reversal.inverse_command or "none"
            print(_one_line(f"{prog}: {reversal.command}: inverse {inverse}; {reversal.note}"))

    return _written(EXIT_OK, prog, write)
