"""`substrate verify`: does a live database carry what head promises?

The report is a dict with one entry per section, in the order of ``SECTIONS``; each section is
a module of this package with a ``section(conn, ...) -> dict``. Every section carries
``summary`` (one line), ``findings`` (sentences), ``ok`` (False: a finding, always exit 1) and
``strict_ok`` (False: a finding under --strict).

Sections, in the order printed (one screen):
- ``revision``: the recorded Alembic revision against the tree's head (behind is a finding);
- ``objects``: per class, N/N of the committed snapshot's objects present, and unexpected ones
  (presence only, ``substrate drift`` compares definitions);
- ``catalog``: the catalog rows against the committed snapshot's, line by line (a differing
  command is a finding that shows both lines);
- ``targets``: the distinct IU Core target functions of the catalog, how many resolve to a
  ``pg_proc`` row with the catalogued parameter types, and which do not (a finding only with
  --strict: the functions belong to IU Core, so a bare database has none of them);
- ``gates``: gate safety from ``fn_iu_gate_verify_closed()`` (a broken never-flip or orphaned
  gate is a finding; a governable gate open inside its window only with --strict); not checked
  before the gate protocol is installed;
- ``derived``: the state the fast paths read: the gate snapshot row equals what the gate
  readers say, the tally watermark row exists (rows past it reported);
- ``privileges``: roles, owners, grants, trigger states and stored ``dot_iu.*`` settings
  against the package's matrix (docs/roles.md); each finding names its repair;
- ``seals``: both ledgers' seal chains recomputed, link by link and range by range, with the
  chain heads printed for recording elsewhere (docs/seals.md);
- ``checksums``: every applied revision re-rendered and compared with its recorded SHA-256 (an
  edited released revision is a finding; "not recorded" is not).

A section that cannot be judged carries ``error`` (a sentence) and makes the exit code 2. A
finding may span lines (the first says what, the others show it). Everything is read from the
database and this checkout's ``alembic/`` and ``schema/``; nothing from ``seeds/``. The command
line is ``substrate.review.verify.cli``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from substrate.review import schema_snapshot
from substrate.review.tree import Tree, UnknownRevision
from substrate.review.verify import (
    catalog,
    checksums,
    derived,
    gates,
    objects,
    privileges,
    revision,
    seals,
    targets,
)


@dataclass(frozen=True)
class Reference:
    """What a database is verified against: an Alembic tree and its committed schema snapshot;
    the seal chain heads an operator recorded; and how to open more connections to the same
    database (the seal ranges are recomputed on ``workers`` of them in parallel)."""

    tree: Tree = field(default_factory=Tree)
    snapshot: Path = schema_snapshot.COMMITTED
    seal_heads: tuple[str, ...] = ()
    connect: Callable | None = None
    workers: int = 2


Section = Callable[..., dict]


def _revision(conn, reference: Reference) -> dict:
    return revision.section(conn, reference.tree)


def _objects(conn, reference: Reference) -> dict:
    return objects.section(conn, reference.tree, reference.snapshot)


def _catalog(conn, reference: Reference) -> dict:
    return catalog.section(conn, reference.snapshot)


def _targets(conn, reference: Reference) -> dict:
    return targets.section(conn)


def _gates(conn, reference: Reference) -> dict:
    return gates.section(conn)


def _derived(conn, reference: Reference) -> dict:
    return derived.section(conn)


def _privileges(conn, reference: Reference) -> dict:
    return privileges.section(conn, reference.snapshot)


def _seals(conn, reference: Reference) -> dict:
    return seals.section(conn, reference.connect, reference.workers, reference.seal_heads)


def _checksums(conn, reference: Reference) -> dict:
    try:
        return checksums.section(conn, schema_snapshot.revision(conn), reference.tree)
    except UnknownRevision as error:
        return {"ok": False, "strict_ok": True, "summary": "not checked", "findings": [],
                "error": f"revision {error} is not in this tree: nothing to re-render"}


SECTIONS: dict[str, Section] = {
    "revision": _revision,
    "objects": _objects,
    "catalog": _catalog,
    "targets": _targets,
    "gates": _gates,
    "derived": _derived,
    "privileges": _privileges,
    "seals": _seals,
    "checksums": _checksums,
}


def build_report(conn, reference: Reference | None = None,
                 sections: dict[str, Section] = SECTIONS) -> dict:
    """Every section's findings; the connection is passed in so tests drive it directly."""
    reference = reference or Reference()
    return {name: section(conn, reference) for name, section in sections.items()}


def exit_code(report: dict, strict: bool) -> int:
    if any(section.get("error") for section in report.values()):
        return 2
    if any(not section["ok"] for section in report.values()):
        return 1
    if strict and any(not section.get("strict_ok", True) for section in report.values()):
        return 1
    return 0


def format_text(report: dict, strict: bool) -> str:
    lines = []
    for name, section in report.items():
        lines.append(f"{name}: {section['summary']}")
        lines += [f"  {line}" for line in section.get("lines", [])]
        if section.get("error"):
            lines.append(f"  ! could not check: {section['error']}")
        for finding in section["findings"]:
            first, *more = finding.split("\n")
            lines.append(f"  - {first}")
            lines += [f"    {line}" for line in more]
    code = exit_code(report, strict)
    if code == 2:
        lines.append("verify: COULD NOT CHECK")
    elif code:
        lines.append("verify: FINDINGS")
    elif any(not section.get("strict_ok", True) for section in report.values()):
        lines.append("verify: ok (unresolved targets fail only with --strict)")
    else:
        lines.append("verify: ok")
    return "\n".join(lines)
