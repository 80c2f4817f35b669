"""The ``checksums`` section of ``substrate verify``: is released history untouched?

Every revision the database has applied is re-rendered and compared with the SHA-256 recorded
when it ran (``substrate.review.checksums``): ``changed`` (the revision file was edited after it
was applied) is a finding; ``not recorded`` (``0001_baseline``, or a revision the database was
``alembic stamp``-ed past) is not.
"""

from __future__ import annotations

from substrate.review.checksums import statuses
from substrate.review.tree import Tree


def section(conn, revision: str | None, tree: Tree) -> dict:
    entries = statuses(conn, revision, tree)
    counts = {s: sum(1 for e in entries if e["status"] == s)
              for s in ("match", "changed", "not recorded")}
    unrecorded = [e["revision"] for e in entries if e["status"] == "not recorded"]
    findings = [
        f"{e['revision']}: applied with sha256 {e['recorded']['sha256'][:12]} "
        f"({e['recorded']['mode']}, by {e['recorded']['applied_by']}, "
        f"{e['recorded']['applied_at']}), renders today as {e['rendered_sha256'][:12]}: "
        "the revision was edited after it was applied"
        for e in entries if e["status"] == "changed"
    ]
    summary = (f"{len(entries)} applied: {counts['match']} match, {counts['changed']} changed, "
               f"{counts['not recorded']} not recorded")
    if unrecorded:
        summary += f" ({', '.join(unrecorded)})"
    return {
        "ok": not findings,
        "strict_ok": True,
        "counts": counts,
        "revisions": entries,
        "summary": summary,
        "findings": findings,
    }
