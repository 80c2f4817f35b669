"""The generator: one deterministic seed revision per registry change (SPEC 5; docs/maintaining.md).

Generator tests run on throw-away copies of alembic/versions; the revisions they write are
upgraded and downgraded on the real server through the project's alembic CLI.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, render_sql

from seeds.catalog import FORMAT_COLUMNS, fetch_catalog
from seeds.generate import GenerateError, generate, plan
from seeds.history import HistoryError, delivered_rows, read_revision, read_versions
from seeds.lock import DEFAULT_VERSIONS, rendering_problems, revision_findings
from seeds.registry import DOT_COMMANDS, HEALTHCHECK, IU_CORE_COMMANDS, DotCommand, catalog_rows
from seeds.writer import SEED_FORMAT, TEMPLATES, revision_id

SEED_FILE = DEFAULT_VERSIONS / "0004_seed_catalog.py"
# Revisions after the first seed, and the number the generator gives the next one.
LATER = tuple(p.name for p in sorted(DEFAULT_VERSIONS.glob("[0-9]*.py")) if p.name >= "0005")
NEXT = 1 + max(int(p.name[:4]) for p in DEFAULT_VERSIONS.glob("[0-9]*.py"))
PING = DotCommand(
    name="dot_iu_ping",
    category="health",
    mutating=False,
    reversible=True,
    target=HEALTHCHECK,
    inverse=None,
    description="Ping: it's 100% harmless (a test-only command).",
)


def copy_versions(tmp_path: Path, without: tuple[str, ...] = ()) -> Path:
    target = tmp_path / "versions"
    shutil.copytree(DEFAULT_VERSIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name in without:
        (target / name).unlink()
    return target


def replaced(commands, command_name: str, **changes) -> tuple[DotCommand, ...]:
    return tuple(
        dataclasses.replace(c, **changes) if c.name == command_name else c for c in commands
    )


def catalog_at(pg, dbname: str) -> dict:
    with pg.connect(dbname) as conn:
        return fetch_catalog(conn)


def run_generator(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seeds.generate", *args], capture_output=True,
                          text=True, cwd=PROJECT_ROOT)


# --- the committed seed revision ------------------------------------------------------------

def test_committed_seed_revision_is_what_the_generator_renders_for_the_registry(tmp_path):
    """0014 (format 2) is exactly what the generator writes for today's registry, after the
    revisions before it."""
    later = tuple(name for name in LATER if name >= "0014")
    versions = copy_versions(tmp_path, without=later)
    planned = plan(versions, DOT_COMMANDS, "Seed required gates")
    assert planned.revision == "0014_seed_required_gates"
    assert planned.down_revision == "0013_runtime_substrate"
    assert (len(planned.changes.insert), len(planned.changes.update)) == (1, 14)
    assert planned.text == (DEFAULT_VERSIONS / "0014_seed_required_gates.py").read_text()


def test_the_first_seed_revision_still_renders_as_released_in_format_1():
    """0004 carries the seven columns of format 1: its rows are the registry's IU Core rows
    without required_gates, and re-rendering them with the format 1 template gives its bytes."""
    revision = read_revision(SEED_FILE)
    assert revision.seed.format == 1
    rows = {row["command_name"]: row for row in revision.seed.insert}
    want = {name: {column: row[column] for column in FORMAT_COLUMNS[1]}
            for name, row in catalog_rows(IU_CORE_COMMANDS).items()}
    assert rows == want
    assert rendering_problems([revision]) == []


def test_seed_revision_imports_nothing_but_alembic():
    tree = ast.parse(SEED_FILE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"__future__", "alembic"}


def test_each_seed_template_speaks_as_the_revisions_of_its_time():
    """Format 1 carries the copies of the helpers every revision up to 0009 carries (0001's);
    format 2, like every revision from 0010 to 0020, imports the shared revision_helpers_v1;
    alembic/script.py.mako renders new revisions with the newest, revision_helpers_v2 (which
    re-exports v1's helpers under the same names)."""
    baseline = (DEFAULT_VERSIONS / "0001_baseline.py").read_text()
    first = TEMPLATES[1].read_text()
    for helper in ("_execute", "_option", "_begin"):
        match = re.search(rf"^def {helper}\(.*?(?=^def |\Z)", baseline, re.S | re.M)
        assert match, f"{helper} not found in 0001_baseline.py"
        assert match.group(0).strip() in first, f"{helper} differs from 0001_baseline.py"
    for text, helpers in ((TEMPLATES[SEED_FORMAT].read_text(), "revision_helpers_v1"),
                          ((PROJECT_ROOT / "alembic" / "script.py.mako").read_text(),
                           "revision_helpers_v2")):
        assert f"import {helpers} as h" in text
        assert "h.begin(expected_version=" in text


def test_seed_revision_docstring_lists_what_it_changes():
    docstring = ast.get_docstring(ast.parse(SEED_FILE.read_text()))
    for name in catalog_rows(IU_CORE_COMMANDS):
        assert f"+ {name}" in docstring
    assert "Revises: 0003_operator_runtime" in docstring and "Reverses:" in docstring


def test_seed_revision_is_lint_clean_under_the_project_ruff_settings():
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed")
    subprocess.run([str(ruff), "check", str(SEED_FILE)], check=True, cwd=PROJECT_ROOT)
    subprocess.run([str(ruff), "format", "--check", str(SEED_FILE)], check=True, cwd=PROJECT_ROOT)


# --- the generator, without a database -------------------------------------------------------

def test_generator_with_nothing_to_do_says_so_and_writes_nothing(tmp_path):
    versions = copy_versions(tmp_path)
    before = sorted(versions.iterdir())
    result = run_generator("--versions", str(versions))
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert sorted(versions.iterdir()) == before


def test_generator_output_is_deterministic(tmp_path):
    commands = DOT_COMMANDS + (PING,)
    first = generate(copy_versions(tmp_path / "a"), commands, "Add ping")
    second = generate(copy_versions(tmp_path / "b"), commands, "Add ping")
    assert first.name == second.name == f"{NEXT:04d}_add_ping.py"
    assert first.read_bytes() == second.read_bytes()


def test_generator_refuses_a_versions_folder_with_several_heads(tmp_path):
    versions = copy_versions(tmp_path)
    (versions / "0005_branch.py").write_text(
        '"""A second head."""\nrevision = "0005_branch"\ndown_revision = "0004_seed_catalog"\n'
    )
    (versions / "0006_other.py").write_text(
        '"""A third head."""\nrevision = "0006_other"\ndown_revision = "0004_seed_catalog"\n'
    )
    with pytest.raises(GenerateError, match="several heads"):
        plan(versions, DOT_COMMANDS + (PING,))


def test_generator_refuses_a_malformed_registry(tmp_path):
    broken = replaced(DOT_COMMANDS, "dot_iu_add_piece", inverse="dot_iu_nowhere")
    with pytest.raises(GenerateError, match="dot_iu_nowhere"):
        plan(copy_versions(tmp_path), broken)


def test_generator_cli_refuses_a_missing_versions_folder(tmp_path):
    result = run_generator("--versions", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "not a directory" in result.stderr


def test_revision_id_is_numbered_after_the_head_and_fits_alembic_version():
    assert revision_id(4, "Seed catalog") == "0004_seed_catalog"
    long = revision_id(12, "Add the gate protocol commands to the catalog, finally")
    assert long == "0012_add_the_gate_protocol_comma" and len(long) == 32


def test_generated_revision_names_update_and_delete_in_its_docstring(tmp_path):
    versions = copy_versions(tmp_path)
    commands = replaced(DOT_COMMANDS, "dot_iu_healthcheck", category="read",
                        description="Probe collections.")
    commands = tuple(c for c in commands if c.name != "dot_iu_collection_status")
    docstring = ast.get_docstring(ast.parse(generate(versions, commands, "Rework").read_text()))
    assert "~ dot_iu_healthcheck: category, description" in docstring
    assert "- dot_iu_collection_status" in docstring


def test_hand_edited_seed_revision_is_caught_naming_the_file(tmp_path):
    versions = copy_versions(tmp_path)
    seed = versions / "0004_seed_catalog.py"
    seed.write_text(seed.read_text().replace(
        '"description": "Restore a soft-deleted piece."',
        '"description": "Restore a piece."',
    ))
    edited = replaced(DOT_COMMANDS, "dot_iu_restore_piece", description="Restore a piece.")
    findings = revision_findings(versions, edited)
    assert len(findings) == 1
    assert "0004_seed_catalog.py: its SEED_* rows no longer match SEED_SHA256" in findings[0]


def test_hand_edited_seed_revision_code_is_caught_naming_the_file(tmp_path):
    versions = copy_versions(tmp_path)
    seed = versions / "0004_seed_catalog.py"
    seed.write_text(seed.read_text().replace("ON CONFLICT (command_name) DO NOTHING\"",
                                             "ON CONFLICT (command_name) DO UPDATE\""))
    findings = revision_findings(versions, DOT_COMMANDS)
    assert len(findings) == 1
    assert "0004_seed_catalog.py: differs from what the generator renders" in findings[0]


def test_seed_history_refuses_an_update_from_values_no_revision_delivered(tmp_path):
    versions = copy_versions(tmp_path)
    commands = replaced(DOT_COMMANDS, "dot_iu_healthcheck", description="Probe collections.")
    path = generate(versions, commands, "Reword")
    path.write_text(path.read_text().replace(
        '"description": "Report whether IU Core collections are healthy."',
        '"description": "Something else."',
    ))
    with pytest.raises(HistoryError, match="dot_iu_healthcheck from old values that differ"):
        delivered_rows(read_versions(versions))


# --- generated revisions on the real server ---------------------------------------------------

def test_generated_revisions_add_change_and_remove_commands_and_reverse_exactly(
    pg, empty_db_name, alembic, tmp_path
):
    versions = copy_versions(tmp_path)
    url = pg.url(empty_db_name)
    alembic(url, "upgrade", "head", versions=versions)
    assert catalog_at(pg, empty_db_name) == catalog_rows(DOT_COMMANDS)

    added = DOT_COMMANDS + (PING,)
    changed = replaced(added, "dot_iu_healthcheck", category="read", reversible=False,
                       description="Probe collections; it's read-only.")
    changed = replaced(changed, "dot_iu_ping", inverse="dot_iu_healthcheck", reversible=True)
    # Removing dot_iu_healthcheck also clears ping's inverse (one revision, both, FK deferred).
    removed = replaced(tuple(c for c in changed if c.name != "dot_iu_healthcheck"),
                       "dot_iu_ping", inverse=None)

    steps = [(DOT_COMMANDS, None)]
    for message, commands in (("Add ping", added), ("Change health", changed),
                              ("Remove healthcheck", removed)):
        path = generate(versions, commands, message)
        steps.append((commands, path.stem))
    assert [stem for _, stem in steps[1:]] == [
        f"{NEXT:04d}_add_ping", f"{NEXT + 1:04d}_change_health",
        f"{NEXT + 2:04d}_remove_healthcheck",
    ]

    for (before, _), (after, revision) in itertools.pairwise(steps):
        alembic(url, "upgrade", revision, versions=versions)
        assert catalog_at(pg, empty_db_name) == catalog_rows(after), f"after upgrade {revision}"
        alembic(url, "downgrade", "-1", versions=versions)
        assert catalog_at(pg, empty_db_name) == catalog_rows(before), f"after downgrade {revision}"
        alembic(url, "upgrade", revision, versions=versions)

    assert revision_findings(versions, removed) == []
    assert generate(versions, removed, "Again") is None
    alembic(url, "downgrade", "0003_operator_runtime", versions=versions)
    assert catalog_at(pg, empty_db_name) == {}


def test_generated_revisions_render_offline_to_the_same_catalog_as_online(
    pg, alembic, psql, tmp_path
):
    versions = copy_versions(tmp_path)
    commands = replaced(DOT_COMMANDS + (PING,), "dot_iu_route_deliver",
                        description="Deliver a route's events: 'at most once'.")
    generate(versions, commands, "Add ping")
    online, offline = "seed_online", "seed_offline"
    for name in (online, offline):
        pg.drop_database(name)
        pg.create_database(name)
    try:
        alembic(pg.url(online), "upgrade", "head", versions=versions)
        psql(offline, render_sql("upgrade", "base:head", versions=versions))
        assert catalog_at(pg, offline) == catalog_at(pg, online) == catalog_rows(commands)
        script = render_sql("downgrade", "head:0003_operator_runtime", versions=versions)
        assert script == render_sql("downgrade", "head:0003_operator_runtime", versions=versions)
        psql(offline, script)
        alembic(pg.url(online), "downgrade", "0003_operator_runtime", versions=versions)
        assert catalog_at(pg, offline) == catalog_at(pg, online) == {}
    finally:
        for name in (online, offline):
            pg.drop_database(name)

