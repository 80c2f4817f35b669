"""The lock between the registry, the seed revisions and a migrated catalog (SPEC 5).

Each function returns findings as sentences naming the commands and fields at fault; an empty
list means that part of the lock holds. ``seeds.check`` runs the offline ones; the tests also
hold a migrated database's catalog to the registry (``catalog_findings``, on a connection they
pass in).
"""

from __future__ import annotations

from pathlib import Path

from seeds.catalog import COLUMNS, LOCKED_FIELDS, differences, fetch_catalog
from seeds.changes import Changes
from seeds.history import HistoryError, RevisionFile, delivered_rows, read_versions
from seeds.registry import DOT_COMMANDS, DotCommand, catalog_rows
from seeds.validate import registry_problems
from seeds.writer import TEMPLATES, render_revision, rows_digest

DEFAULT_VERSIONS = Path(__file__).resolve().parent.parent / "alembic" / "versions"


def rendering_problems(revisions: list[RevisionFile]) -> list[str]:
    """Seed revisions whose file is not exactly what the generator renders from its own rows."""
    problems = []
    for item in revisions:
        seed = item.seed
        if seed is None:
            continue
        if seed.format not in TEMPLATES:
            problems.append(f"{item.path.name}: unknown SEED_FORMAT {seed.format!r}")
            continue
        if len(item.down_revisions) > 1:
            problems.append(f"{item.path.name}: a seed revision must have one down_revision")
            continue
        down = item.down_revisions[0] if item.down_revisions else None
        changes = Changes(seed.insert, seed.update, seed.delete)
        if seed.sha256 != rows_digest(changes):
            problems.append(
                f"{item.path.name}: its SEED_* rows no longer match SEED_SHA256 (rows edited by "
                "hand?); generated revisions are never edited, generate a new one"
            )
            continue
        try:
            expected = render_revision(item.revision, down, item.message, changes, seed.format)
        except (ValueError, TypeError, KeyError) as error:
            problems.append(f"{item.path.name}: cannot be re-rendered ({error})")
            continue
        if item.path.read_text() != expected:
            problems.append(
                f"{item.path.name}: differs from what the generator renders from its SEED_* rows "
                "(edited by hand?); generated revisions are never edited, generate a new one"
            )
    return problems


def revision_findings(
    versions: Path = DEFAULT_VERSIONS, commands: tuple[DotCommand, ...] = DOT_COMMANDS
) -> list[str]:
    """The registry against the union of the seed revisions in ``versions``."""
    findings = [f"registry: {problem}" for problem in registry_problems(commands)]
    try:
        revisions = read_versions(versions)
        delivered = delivered_rows(revisions)
    except HistoryError as error:
        return findings + [f"seed revisions: {problem}" for problem in error.problems]
    findings += [f"seed revisions: {problem}" for problem in rendering_problems(revisions)]
    for difference in differences(delivered, catalog_rows(commands), COLUMNS):
        findings.append(
            "registry and seed revisions disagree: "
            + difference.describe(have="the seed revisions", want="the registry")
            + " (run `make seed-revision`)"
        )
    return findings


def catalog_findings(conn, commands: tuple[DotCommand, ...] = DOT_COMMANDS) -> list[str]:
    """A migrated database's catalog against the registry, on the locked fields."""
    catalog = fetch_catalog(conn)
    if catalog is None:
        return ["catalog: table public.dot_iu_command_catalog does not exist"]
    return [
        "catalog and registry disagree: "
        + difference.describe(have="the catalog", want="the registry")
        for difference in differences(catalog, catalog_rows(commands), LOCKED_FIELDS)
    ]
