"""Applied-migration checksums: does every applied revision still render as it did when it ran?

``alembic/env.py`` records one ``public.substrate_migration_history`` row per applied step with
the SHA-256 of the revision's SQL rendered with default options (online and in ``--sql`` output
alike). Here each revision the database has applied (base to its recorded revision) is
re-rendered the same way (``substrate.render``) and compared with its latest ``upgrade`` row:

- ``match``: the same digest;
- ``changed``: another digest: the revision file was edited after it was applied (released
  history was rewritten), a finding;
- ``not recorded``: no upgrade row. ``0001_baseline`` always (it runs before the history table
  exists), and any revision a database was ``alembic stamp``-ed past. Not a finding.
"""

from __future__ import annotations

from substrate.render import digest
from substrate.tree import Tree

HISTORY = "public.substrate_migration_history"
LATEST_UPGRADES_SQL = f"""
SELECT DISTINCT ON (revision) revision, sql_sha256, mode, applied_by, applied_at
  FROM {HISTORY}
 WHERE direction = 'upgrade'
 ORDER BY revision, applied_at DESC, history_id DESC
"""


def recorded(conn) -> dict[str, dict]:
    """The latest upgrade row per revision, or {} when the history table does not exist."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (HISTORY,)).fetchone()[0]:
        return {}
    return {
        revision: {"sha256": sha, "mode": mode, "applied_by": by, "applied_at": at.isoformat()}
        for revision, sha, mode, by, at in conn.execute(LATEST_UPGRADES_SQL).fetchall()
    }


def statuses(conn, revision: str | None, tree: Tree) -> list[dict]:
    """One entry per applied revision, base first: revision, status, recorded and rendered."""
    rows = recorded(conn)
    out = []
    for applied in tree.applied(revision):
        rendered = digest(tree.module(applied), "upgrade")
        row = rows.get(applied)
        if row is None:
            status = "not recorded"
        else:
            status = "match" if row["sha256"] == rendered else "changed"
        out.append({"revision": applied, "status": status, "rendered_sha256": rendered,
                    "recorded": row})
    return out


def section(conn, revision: str | None, tree: Tree) -> dict:
    """The ``checksums`` section of ``substrate verify``."""
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
