"""`substrate verify --url URL [--json] [--strict] [--alembic-ini INI]`: the report, printed.

Exit 0 ok, 1 a finding, 2 could not check (no database, a malformed URL, an unreachable server,
or a section that cannot be judged).
"""

from __future__ import annotations

import json
import sys

from substrate import connect
from substrate.review.tree import Tree
from substrate.review.verify import Reference, build_report, exit_code, format_text


def register(parser) -> None:
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL)")
    parser.add_argument(
        "--strict", action="store_true",
        help="also exit 1 on what is otherwise only reported: an unresolved target function, "
             "or a governable gate open inside its approved window",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--alembic-ini", help="the Alembic tree (default: the project's)")
    parser.add_argument(
        "--seal-head", action="append", default=[], metavar="SHA256",
        help="a seal chain head recorded earlier (verify prints the heads); a finding when it is "
             "no longer in the chain. Repeatable.")
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    import psycopg

    try:
        url = connect.resolve_url(args.url)

        def another():
            return connect.connect(url, application_name="substrate verify",
                                   statement_default=connect.REVIEW)

        with another() as conn:
            report = build_report(conn, Reference(Tree(args.alembic_ini),
                                                  seal_heads=tuple(args.seal_head),
                                                  connect=another))
    except connect.CannotConnect as error:
        print(f"substrate verify: cannot check: {error}", file=sys.stderr)
        return connect.EXIT_CANNOT_CHECK
    except psycopg.Error as error:
        print(f"substrate verify: cannot check: {' '.join(str(error).split())}",
              file=sys.stderr)
        return connect.EXIT_CANNOT_CHECK
    code = exit_code(report, args.strict)
    if args.json:
        print(json.dumps({"strict": args.strict, "exit": code, "sections": report}, indent=2))
    else:
        print(format_text(report, args.strict))
    return code
