"""`substrate verify --url URL [--json] [--strict] [--alembic-ini INI]`: the report, printed.

Exit 0 ok, 1 a finding, 2 could not check.
"""

from __future__ import annotations

import json
import os
import sys

from substrate.connect import to_conninfo
from substrate.review.tree import Tree
from substrate.review.verify import Reference, build_report, exit_code, format_text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="inventory, catalog, targets, gate safety, derived state, migration checksums",
    )
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any target function is unresolved"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--alembic-ini", help="the Alembic tree (default: the project's)")
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    import psycopg

    url = args.url or os.environ.get("DATABASE_URL")
    if not url:
        print("substrate verify: no database: pass --url or set DATABASE_URL", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(to_conninfo(url), autocommit=True) as conn:
            report = build_report(conn, Reference(Tree(args.alembic_ini)))
    except psycopg.Error as error:
        print(f"substrate verify: cannot check: {error}", file=sys.stderr)
        return 2
    code = exit_code(report, args.strict)
    if args.json:
        print(json.dumps({"strict": args.strict, "exit": code, "sections": report}, indent=2))
    else:
        print(format_text(report, args.strict))
    return code
