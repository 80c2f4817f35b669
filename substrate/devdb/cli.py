"""`substrate db up|down|url|status`: the project's embedded PostgreSQL by hand.

Also ``python -m substrate.devdb up|down|url|status``.

- ``up``: install (once), initdb, start, create the ``substrate`` database; prints its URL
  (``postgresql://postgres@127.0.0.1:<port>/substrate``, which psql, psycopg and Alembic all
  take) and where psql is;
- ``url``: that URL (``make demo`` reads it);
- ``status``: running or stopped (exit 0 running, 1 stopped);
- ``down``: stops the server, or says it was not running (exit 0 either way).

Only ``up`` downloads PostgreSQL; the others work with what is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from substrate.devdb.server import DEFAULT_DATABASE, EmbeddedError, project_cluster


def register(parser) -> None:
    parser.add_argument("action", choices=("up", "down", "url", "status"))
    parser.set_defaults(handler=_main)


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _main(args) -> int:
    try:
        cluster = project_cluster(install=args.action == "up")
        if args.action == "up":
            cluster.init()
            cluster.start()
            cluster.create_database(DEFAULT_DATABASE)
            print(cluster.url())
            print(f"psql: {_shown(cluster.psql)}")
        elif args.action == "down":
            if cluster.running():
                cluster.stop()
                print(f"stopped {cluster.rundir}")
            else:
                print(f"not running: {cluster.rundir}")
        elif args.action == "url":
            print(cluster.url())
        else:
            state = "running" if cluster.running() else "stopped"
            print(f"{state}: {cluster.rundir} port {cluster.port} ({cluster.bindir})")
            return 0 if state == "running" else 1
    except EmbeddedError as error:
        print(f"substrate db {args.action}: {error}", file=sys.stderr)
        return 2
    return 0
