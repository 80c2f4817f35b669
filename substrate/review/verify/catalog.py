"""The ``catalog`` section of ``substrate verify``: the catalog rows against the committed snapshot.

The committed ``schema/snapshot.txt`` holds, in its ``catalog`` section, every row the seed
revisions put in ``public.dot_iu_command_catalog`` at head, each rendered on one line
(``schema_snapshot``: category, mutating, reversible, target, inverse and description). The live
rows are rendered the same way and compared line by line: a command missing from the database,
one the snapshot does not have, or one whose line differs is a finding that names the command
and shows the line of each side. (``make check-seeds`` locks the registry in ``seeds/`` to the
seed revisions, and the tests lock the seed revisions to the snapshot.)
"""

from __future__ import annotations

from pathlib import Path

from substrate.review import schema_snapshot
from substrate.review.schema_snapshot import COMMITTED

CATALOG_TABLE = "public.dot_iu_command_catalog"


def differences(have: dict[str, schema_snapshot.Item], want: dict[str, str]) -> list[dict]:
    """One entry per command on which the live rows (``have``) and the snapshot's lines
    (``want``, by command) disagree, sorted by command: its kind (``missing`` from the
    database, ``extra`` in it, or ``differs``) and the line of each side (None where absent)."""
    found = []
    for name in sorted(set(have) | set(want)):
        line = have[name].line() if name in have else None
        if line == want.get(name):
            continue
        kind = "missing" if name not in have else "extra" if name not in want else "differs"
        found.append({"command_name": name, "kind": kind, "snapshot": want.get(name),
                      "database": line})
    return found


def describe(difference: dict, snapshot_name: str) -> str:
    name = difference["command_name"]
    if difference["kind"] == "missing":
        return (f"{name}: in {snapshot_name}, missing from the database\n"
                f"snapshot: {difference['snapshot']}")
    if difference["kind"] == "extra":
        return (f"{name}: in the database, not in {snapshot_name}\n"
                f"database: {difference['database']}")
    return (f"{name}: differs from {snapshot_name}\n"
            f"snapshot: {difference['snapshot']}\n"
            f"database: {difference['database']}")


def section(conn, path: Path = COMMITTED) -> dict:
    if not path.exists():
        return {"ok": False, "strict_ok": True, "error": f"{path} does not exist; run: make "
                "schema", "summary": "no committed snapshot", "findings": []}
    _, committed = schema_snapshot.parse(path.read_text())
    want = committed.get("catalog", {})
    present = conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL",
                           (CATALOG_TABLE,)).fetchone()[0]
    if not present:
        return {
            "ok": False,
            "strict_ok": True,
            "present": False,
            "snapshot_size": len(want),
            "catalog_size": None,
            "differences": [],
            "summary": f"table {CATALOG_TABLE} is missing; snapshot {len(want)}",
            "findings": [f"{CATALOG_TABLE} does not exist (not migrated?)"],
        }
    have = schema_snapshot.collect(conn, ("catalog",))["catalog"]
    found = differences(have, want)
    where = f"schema/{path.name}"
    verdict = f"matches {where}" if not found else f"{len(found)} command(s) differ"
    return {
        "ok": not found,
        "strict_ok": True,
        "present": True,
        "snapshot_size": len(want),
        "catalog_size": len(have),
        "differences": found,
        "summary": f"{len(have)} rows, snapshot {len(want)}: {verdict}",
        "findings": [describe(difference, where) for difference in found],
    }
