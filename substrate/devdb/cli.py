"""`substrate db up|down|url|status`: the project's embedded PostgreSQL by hand.

Also ``python -m substrate.devdb up|down|url|status``.
"""

from __future__ import annotations

import sys

from substrate.devdb.server import DEFAULT_DATABASE, EmbeddedError, project_cluster


def register(parser) -> None:
    parser.add_argument("action", choices=("up", "down", "url", "status"))
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    try:
        cluster = project_cluster()
        if args.action == "up":
            cluster.init()
            cluster.start()
            cluster.create_database(DEFAULT_DATABASE)
            print(cluster.url())
        elif args.action == "down":
            cluster.stop()
            print(f"stopped {cluster.rundir}")
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
