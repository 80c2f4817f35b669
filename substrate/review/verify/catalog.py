"""The ``catalog`` section of ``substrate verify``: catalog size against the registry, and every
difference on (command_name, category, mutating, reversible, target_function, inverse_command).
"""

from __future__ import annotations

from seeds.catalog import LOCKED_FIELDS, differences, fetch_catalog
from seeds.registry import DOT_COMMANDS, DotCommand, catalog_rows


def section(conn, commands: tuple[DotCommand, ...] = DOT_COMMANDS) -> dict:
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
