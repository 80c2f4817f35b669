"""`substrate verify`: does a database carry what the registry promises?

The report is a dict with one entry per section, each built by a small function
``section(conn, commands) -> dict`` so sections can be added (object inventory, gate safety,
migration checksums). Every section carries ``summary`` (one line), ``findings`` (sentences),
``ok`` (False: a finding, always exit 1) and ``strict_ok`` (False: a finding under --strict).

Sections today:
- ``catalog``: catalog size against the registry, and every difference on (command_name,
  category, mutating, reversible, target_function, inverse_command);
- ``targets``: the distinct target functions, how many resolve to a ``pg_proc`` row with the
  registry's parameter types, and which do not (a finding only with --strict: the functions
  belong to IU Core, so a bare database has none of them).

Exit 0 ok, 1 a finding, 2 could not check.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from seeds.catalog import LOCKED_FIELDS, differences, fetch_catalog
from seeds.registry import DOT_COMMANDS, DotCommand, catalog_rows
from substrate.dburl import to_conninfo
from substrate.targets import resolve_targets

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


SECTIONS: dict[str, Section] = {"catalog": catalog_section, "targets": targets_section}


def build_report(
    conn, commands: tuple[DotCommand, ...] = DOT_COMMANDS, sections: dict[str, Section] = SECTIONS
) -> dict:
    """Every section's findings; the connection is passed in so tests drive it directly."""
    return {name: section(conn, commands) for name, section in sections.items()}


def exit_code(report: dict, strict: bool) -> int:
    if any(not section["ok"] for section in report.values()):
        return 1
    if strict and any(not section.get("strict_ok", True) for section in report.values()):
        return 1
    return 0


def format_text(report: dict, strict: bool) -> str:
    lines = []
    for name, section in report.items():
        lines.append(f"{name}: {section['summary']}")
        lines += [f"  - {finding}" for finding in section["findings"]]
    code = exit_code(report, strict)
    if code:
        lines.append("verify: FINDINGS")
    elif any(not section.get("strict_ok", True) for section in report.values()):
        lines.append("verify: ok (unresolved targets fail only with --strict)")
    else:
        lines.append("verify: ok")
    return "\n".join(lines)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="catalog against the registry, target-function resolution"
    )
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any target function is unresolved"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_main)


def _main(args) -> int:
    import psycopg

    url = args.url or os.environ.get("DATABASE_URL")
    if not url:
        print("substrate verify: no database: pass --url or set DATABASE_URL", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(to_conninfo(url), autocommit=True) as conn:
            report = build_report(conn)
    except psycopg.Error as error:
        print(f"substrate verify: cannot check: {error}", file=sys.stderr)
        return 2
    code = exit_code(report, args.strict)
    if args.json:
        print(json.dumps({"strict": args.strict, "exit": code, "sections": report}, indent=2))
    else:
        print(format_text(report, args.strict))
    return code
