"""`substrate report`: what the demo prints — revision, owned objects, gates, ledger health."""

from __future__ import annotations

import sys

from substrate import connect
from substrate.review import schema_snapshot

OBJECT_KINDS = ("tables", "views", "functions", "indexes", "constraints", "triggers")


def gather(conn) -> dict:
    """The report as data; the connection is passed in so tests drive it directly."""
    snap = schema_snapshot.take(conn)
    revision = conn.execute(
        "SELECT string_agg(version_num, ',') FROM public.alembic_version"
    ).fetchone()[0]
    objects = {kind: len(snap[kind]) for kind in OBJECT_KINDS}
    objects["tables"] = sum(1 for line in snap["tables"] if line.startswith("table "))
    objects["views"] = len(snap["views"])
    gates = conn.execute(
        "SELECT key, value FROM public.dot_config ORDER BY key"
    ).fetchall()
    health = None
    if conn.execute("SELECT to_regclass('public.v_dot_iu_command_run_health')").fetchone()[0]:
        cursor = conn.execute("SELECT * FROM public.v_dot_iu_command_run_health")
        columns = [c.name for c in cursor.description]
        health = dict(zip(columns, cursor.fetchone(), strict=True))
    return {"revision": revision, "objects": objects, "gates": gates, "health": health,
            "catalog_rows": len(snap["catalog"])}


def format_report(report: dict) -> str:
    lines = [f"revision: {report['revision'] or '<base>'}", "objects owned:"]
    lines += [f"  {kind:<12} {count}" for kind, count in report["objects"].items()]
    lines.append(f"  {'catalog rows':<12} {report['catalog_rows']}")
    lines.append("gates:")
    lines += [f"  {key:<42} {value}" for key, value in report["gates"]]
    if report["health"] is not None:
        lines.append("v_dot_iu_command_run_health:")
        lines += [f"  {key:<18} {_readable(key, value)}"
                  for key, value in report["health"].items()]
    return "\n".join(lines)


def _readable(key: str, value: object) -> object:
    """A value as a reader wants it: a missing time (no run yet) is "never", not None."""
    if value is None:
        return "never" if key.endswith("_at") else "-"
    return value


def register(parser) -> None:
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL)")
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    import psycopg

    try:
        with connect.connect(connect.resolve_url(args.url),
                             application_name="substrate report") as conn:
            print(format_report(gather(conn)))
    except connect.CannotConnect as error:
        print(f"substrate report: {error}", file=sys.stderr)
        return connect.EXIT_CANNOT_CHECK
    except psycopg.Error as error:
        print(f"substrate report: {' '.join(str(error).split())}", file=sys.stderr)
        return connect.EXIT_CANNOT_CHECK
    return connect.EXIT_OK
