"""The object inventory of ``substrate verify``: where the database is, and what it holds.

- ``revision``: the recorded Alembic revision against the tree's head (behind head is a finding;
  a revision the tree does not know means verify cannot check);
- ``objects``: per class, how many of the objects in the committed snapshot
  (``schema/snapshot.txt``, head) the database has, ``N/N``, and how many objects of the
  package's naming it has that the snapshot does not. Presence only, read-only, no scratch
  database: ``substrate drift`` compares definitions. Config keys no revision creates are not
  counted against the database (``dot_config`` is shared with IU Core).
"""

from __future__ import annotations

from pathlib import Path

from substrate import snapshot
from substrate.tree import PROJECT_ROOT, Tree, UnknownRevision

SNAPSHOT = PROJECT_ROOT / "schema" / "snapshot.txt"
SHORT = {"constraints": "constr", "privileges": "privs"}


def revision_section(conn, tree: Tree) -> dict:
    at = snapshot.revision(conn)
    head = tree.head()
    base = {"revision": at, "head": head, "pending": [], "strict_ok": True}
    if at is None:
        return {**base, "ok": False,
                "summary": f"no Alembic revision (no public.alembic_version); head {head}",
                "findings": ["Alembic has never run here: `alembic upgrade head`, or adopt an "
                             "existing IU Core database with `alembic stamp 0001_baseline`"]}
    try:
        pending = tree.pending(at)
    except UnknownRevision as error:
        return {**base, "ok": False, "error": f"the database is at revision {error}, which this "
                "tree does not have (deployed from a newer checkout?)",
                "summary": f"{at}: unknown to this tree (head {head})", "findings": []}
    if not pending:
        return {**base, "ok": True, "summary": f"{at} (head)", "findings": []}
    return {**base, "ok": False, "pending": pending,
            "summary": f"{at}, {len(pending)} behind head {head}",
            "findings": [f"{len(pending)} revision(s) not applied: {', '.join(pending)}"]}


def objects_section(conn, tree: Tree, path: Path = SNAPSHOT) -> dict:
    if not path.exists():
        return {"ok": False, "strict_ok": True, "error": f"{path} does not exist; run: make "
                "schema", "summary": "no committed snapshot", "findings": []}
    at, wanted = snapshot.parse_keys(path.read_text())
    if at != tree.head():
        return {"ok": False, "strict_ok": True, "summary": f"snapshot at {at}, head {tree.head()}",
                "error": f"{path.name} describes {at} but the tree's head is {tree.head()}: "
                         "run: make schema", "findings": []}
    live = snapshot.collect(conn)
    classes, findings = {}, []
    for section in snapshot.SECTIONS:
        want, have = set(wanted.get(section, [])), set(live[section])
        missing = sorted(want - have)
        unexpected = [] if section == "config" else sorted(have - want)
        classes[section] = {"present": len(want & have), "expected": len(want),
                            "missing": missing, "unexpected": unexpected}
        findings += [f"{section}: missing {key}" for key in missing]
        findings += [f"{section}: unexpected {key}" for key in unexpected]
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
