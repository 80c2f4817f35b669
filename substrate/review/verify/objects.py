"""The ``objects`` section of ``substrate verify``: the object inventory.

Per class, how many of the objects in the committed snapshot (``schema/snapshot.txt``, head) the
database has, ``N/N``, and how many objects of the package's naming it has that the snapshot
does not. Presence only, read-only, no scratch database: ``substrate drift`` compares
definitions. Config keys no revision creates are not counted against the database
(``dot_config`` is shared with IU Core). Grants and owners are the ``privileges`` section's.
"""

from __future__ import annotations

from pathlib import Path

from substrate.review import schema_snapshot
from substrate.review.schema_snapshot import COMMITTED
from substrate.review.tree import Tree

SHORT = {"constraints": "constr"}
# Sections another verify section judges (substrate.review.verify.privileges).
OTHERS = ("privileges", "owners")


def section(conn, tree: Tree, path: Path = COMMITTED) -> dict:
    if not path.exists():
        return {"ok": False, "strict_ok": True, "error": f"{path} does not exist; run: make "
                "schema", "summary": "no committed snapshot", "findings": []}
    at, wanted = schema_snapshot.parse_keys(path.read_text())
    if at != tree.head():
        return {"ok": False, "strict_ok": True, "summary": f"snapshot at {at}, head {tree.head()}",
                "error": f"{path.name} describes {at} but the tree's head is {tree.head()}: "
                         "run: make schema", "findings": []}
    live = schema_snapshot.collect(
        conn, tuple(section for section in schema_snapshot.SECTIONS if section not in OTHERS))
    classes, findings = {}, []
    for kind in (section for section in schema_snapshot.SECTIONS if section not in OTHERS):
        want, have = set(wanted.get(kind, [])), set(live[kind])
        missing = sorted(want - have)
        unexpected = [] if kind == "config" else sorted(have - want)
        classes[kind] = {"present": len(want & have), "expected": len(want),
                         "missing": missing, "unexpected": unexpected}
        findings += [f"{kind}: missing {key}" for key in missing]
        findings += [f"{kind}: unexpected {key}" for key in unexpected]
    present = sum(c["present"] for c in classes.values())
    total = sum(c["expected"] for c in classes.values())
    extra = sum(len(c["unexpected"]) for c in classes.values())
    cells = [f"{SHORT.get(name, name)} {c['present']}/{c['expected']}"
             + (f" +{len(c['unexpected'])}" if c["unexpected"] else "")
             for name, c in classes.items()]
    return {
        "ok": not findings,
        "strict_ok": True,
        "snapshot": str(path.name),
        "classes": {name: {k: v for k, v in c.items()} for name, c in classes.items()},
        "summary": f"{present}/{total} present" + (f", {extra} unexpected" if extra else "")
                   + f" (schema/{path.name} at {at})",
        "lines": [", ".join(cells[:6]), ", ".join(cells[6:])],
        "findings": findings[:12] + ([f"... and {len(findings) - 12} more (substrate drift "
                                      "shows them all)"] if len(findings) > 12 else []),
    }
