"""`substrate verify`: does a database carry what the registry promises?

The report is a dict with one entry per section, each built by a small function
``section(conn, commands) -> dict`` so sections can be added (object inventory, gate safety,
migration checksums). Every section carries ``summary`` (one line), ``findings`` (sentences),
``ok`` (False: a finding, always exit 1) and ``strict_ok`` (False: a finding under --strict).

Sections, in the order printed (one screen):
- ``revision``: the recorded Alembic revision against the tree's head (behind is a finding);
- ``objects``: per class, N/N of the committed snapshot's objects present, and unexpected ones
  (``substrate.inventory``; presence only, ``substrate drift`` compares definitions);
- ``catalog``: catalog size against the registry, and every difference on (command_name,
  category, mutating, reversible, target_function, inverse_command);
- ``targets``: the distinct target functions, how many resolve to a ``pg_proc`` row with the
  registry's parameter types, and which do not (a finding only with --strict: the functions
  belong to IU Core, so a bare database has none of them);
- ``gates``: gate safety from ``fn_iu_gate_verify_closed()`` when installed, else from the
  ``dot_config`` values (``substrate.gate_safety``: a broken never-flip or orphaned gate is a
  finding; a governable gate open inside its window only with --strict);
- ``derived``: the state the fast paths read (``substrate.derived``): the gate snapshot row
  equals dot_config's gates, the tally watermark row exists (rows past it reported);
- ``checksums``: every applied revision re-rendered and compared with its recorded SHA-256
  (``substrate.checksums``: an edited released revision is a finding; "not recorded" is not).

A section that cannot be judged carries ``error`` (a sentence) and makes the exit code 2.

Exit 0 ok, 1 a finding, 2 could not check.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from seeds.catalog import LOCKED_FIELDS, differences, fetch_catalog
from seeds.registry import DOT_COMMANDS, DotCommand, catalog_rows
from substrate import checksums, derived, gate_safety, inventory, snapshot
from substrate.dburl import to_conninfo
from substrate.targets import resolve_targets
from substrate.tree import Tree, UnknownRevision

Section = Callable[..., dict]


def catalog_section(conn, commands: tuple[DotCommand, ...]) -> dict:
    registry = catalog_rows(commands)
    catalog = fetch_catalog(conn)
    if catalog is None:
        return {
            "ok": False,
            "strict_ok": True,
            "present": False,
            "registry_size": len(registry),
            "catalog_size": None,
            "differences": [],
            "summary": f"table public.dot_iu_command_catalog is missing; registry {len(registry)}",
            "findings": ["public.dot_iu_command_catalog does not exist (not migrated?)"],
        }
    found = differences(catalog, registry, LOCKED_FIELDS)
    verdict = "matches the registry" if not found else f"{len(found)} command(s) differ"
    return {
        "ok": not found,
        "strict_ok": True,
        "present": True,
        "registry_size": len(registry),
        "catalog_size": len(catalog),
        "differences": [difference.as_dict() for difference in found],
        "summary": f"{len(catalog)} rows, registry {len(registry)}: {verdict}",
        "findings": [d.describe(have="the catalog", want="the registry") for d in found],
    }


def targets_section(conn, commands: tuple[DotCommand, ...]) -> dict:
    targets = resolve_targets(conn, commands)
    unresolved = [target for target in targets if not target["resolves"]]
    findings = []
    for target in unresolved:
        finding = f"unresolved {target['signature']} (called by {', '.join(target['commands'])})"
        if target["same_name"]:
            finding += f"; same name, other parameters: {', '.join(target['same_name'])}"
        findings.append(finding)
    resolved = len(targets) - len(unresolved)
    return {
        "ok": True,
        "strict_ok": not unresolved,
        "distinct": len(targets),
        "resolved": resolved,
        "unresolved": [target["signature"] for target in unresolved],
        "functions": targets,
        "summary": f"{len(targets)} distinct target functions, {resolved} resolve in pg_proc",
        "findings": findings,
    }


def revision_section(conn, commands: tuple[DotCommand, ...], tree: Tree | None = None) -> dict:
    return inventory.revision_section(conn, tree or Tree())


def objects_section(conn, commands: tuple[DotCommand, ...], tree: Tree | None = None,
                    path: Path = inventory.SNAPSHOT) -> dict:
    return inventory.objects_section(conn, tree or Tree(), path)


def gates_section(conn, commands: tuple[DotCommand, ...]) -> dict:
    return gate_safety.section(conn)


def derived_section(conn, commands: tuple[DotCommand, ...]) -> dict:
    return derived.section(conn)


def checksums_section(conn, commands: tuple[DotCommand, ...], tree: Tree | None = None) -> dict:
    try:
        return checksums.section(conn, snapshot.revision(conn), tree or Tree())
    except UnknownRevision as error:
        return {"ok": False, "strict_ok": True, "summary": "not checked", "findings": [],
                "error": f"revision {error} is not in this tree: nothing to re-render"}


SECTIONS: dict[str, Section] = {
    "revision": revision_section,
    "objects": objects_section,
    "catalog": catalog_section,
    "targets": targets_section,
    "gates": gates_section,
    "derived": derived_section,
    "checksums": checksums_section,
}


def sections_for(tree: Tree, path: Path = inventory.SNAPSHOT) -> dict[str, Section]:
    """SECTIONS against another Alembic tree (``--alembic-ini``) or snapshot file."""
    return {
        **SECTIONS,
        "revision": partial(revision_section, tree=tree),
        "objects": partial(objects_section, tree=tree, path=path),
        "checksums": partial(checksums_section, tree=tree),
    }


def build_report(
    conn, commands: tuple[DotCommand, ...] = DOT_COMMANDS, sections: dict[str, Section] = SECTIONS
) -> dict:
    """Every section's findings; the connection is passed in so tests drive it directly."""
    return {name: section(conn, commands) for name, section in sections.items()}


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
        lines += [f"  - {finding}" for finding in section["findings"]]
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


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="inventory, catalog, targets, gate safety, derived state, migration checksums",
    )
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any target function is unresolved"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--alembic-ini", help="the Alembic tree (default: the project's)")
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    import psycopg

    url = args.url or os.environ.get("DATABASE_URL")
    if not url:
        print("substrate verify: no database: pass --url or set DATABASE_URL", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(to_conninfo(url), autocommit=True) as conn:
            report = build_report(conn, sections=sections_for(Tree(args.alembic_ini)))
    except psycopg.Error as error:
        print(f"substrate verify: cannot check: {error}", file=sys.stderr)
        return 2
    code = exit_code(report, args.strict)
    if args.json:
        print(json.dumps({"strict": args.strict, "exit": code, "sections": report}, indent=2))
    else:
        print(format_text(report, args.strict))
    return code
