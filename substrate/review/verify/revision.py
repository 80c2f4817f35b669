"""The ``revision`` section of ``substrate verify``: where the database is against the tree.

The recorded Alembic revision against the tree's head: at head is fine, behind head is a
finding (the revisions not applied are listed), no ``alembic_version`` is a finding (Alembic has
never run there), and a revision the tree does not know means verify cannot check.
"""

from __future__ import annotations

from substrate.review import schema_snapshot
from substrate.review.tree import Tree, UnknownRevision


def section(conn, tree: Tree) -> dict:
    at = schema_snapshot.revision(conn)
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
