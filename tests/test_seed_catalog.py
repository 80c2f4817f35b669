"""The seed revision on a real server, and the lock between registry, revisions and catalog.

SPEC 3.3 and 5: the catalog is the registry's projection; the seed inserts with
ON CONFLICT DO NOTHING, runs twice without effect, and its downgrade deletes exactly its rows.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import subprocess
import sys

import pgtap
import pytest
from conftest import PROJECT_ROOT

from seeds.catalog import FORMAT_COLUMNS, fetch_catalog
from seeds.lock import DEFAULT_VERSIONS, catalog_findings, revision_findings
from seeds.registry import DOT_COMMANDS, IU_CORE_COMMANDS, catalog_rows
from substrate.review.verify import build_report, exit_code

SEED_FILE = DEFAULT_VERSIONS / "0004_seed_catalog.py"
# The columns 0004_seed_catalog (a format 1 seed revision) writes; they exist at every revision.
ROWS_SQL = (f"SELECT {', '.join(FORMAT_COLUMNS[1])}, created_at FROM dot_iu_command_catalog "
            "ORDER BY 1")
HAND_ROW = (
    "INSERT INTO dot_iu_command_catalog "
    "(command_name, category, mutating, reversible, target_function, description) "
    "VALUES (%s, %s, false, true, 'public.fn_iu_collection_healthcheck()', 'Made by hand.')"
)


def seed_module():
    """The seed revision as a module (tests may import revisions; revisions import no seeds/)."""
    spec = importlib.util.spec_from_file_location("seed_0004_under_test", SEED_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_transaction(conn, statements) -> None:
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


def replaced(command_name: str, **changes):
    return tuple(
        dataclasses.replace(c, **changes) if c.name == command_name else c for c in DOT_COMMANDS
    )


def check_seeds(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seeds.check", *args], capture_output=True,
                          text=True, cwd=PROJECT_ROOT)


@pytest.fixture
def db_at_0003(pg, empty_db_name, alembic):
    """A fresh database migrated to 0003_operator_runtime: the catalog table, no rows."""
    alembic(pg.url(empty_db_name), "upgrade", "0003_operator_runtime")
    with pg.connect(empty_db_name) as conn:
        yield conn


# --- the lock --------------------------------------------------------------------------------

def test_migrated_catalog_equals_the_registry_in_every_column(db):
    assert fetch_catalog(db) == catalog_rows(DOT_COMMANDS)
    assert catalog_findings(db) == []


def test_registry_equals_the_union_of_the_seed_revisions():
    assert revision_findings() == []


def test_check_seeds_passes_on_the_project():
    result = check_seeds()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"check-seeds: ok, {len(DOT_COMMANDS)} commands" in result.stdout


def test_registry_edited_without_a_revision_fails_naming_command_and_field():
    edited = replaced("dot_iu_healthcheck", category="read", mutating=True)
    assert revision_findings(DEFAULT_VERSIONS, edited) == [
        "registry and seed revisions disagree: dot_iu_healthcheck: category 'health' in the "
        "seed revisions, 'read' in the registry; mutating False in the seed revisions, True in "
        "the registry (run `make seed-revision`)"
    ]


def test_registry_command_added_without_a_revision_fails_naming_it():
    edited = DOT_COMMANDS + (dataclasses.replace(DOT_COMMANDS[0], name="dot_iu_ping"),)
    findings = revision_findings(DEFAULT_VERSIONS, edited)
    assert findings == [
        "registry and seed revisions disagree: dot_iu_ping: in the registry, missing from the "
        "seed revisions (run `make seed-revision`)"
    ]


def test_seed_revision_left_uncommitted_fails_the_cli_check(tmp_path):
    versions = tmp_path / "versions"
    shutil.copytree(DEFAULT_VERSIONS, versions, ignore=shutil.ignore_patterns("__pycache__"))
    for later in sorted(versions.glob("*.py")):  # 0004_seed_catalog and every revision after it
        if later.name >= "0004":
            later.unlink()
    result = check_seeds("--versions", str(versions))
    assert result.returncode == 1
    assert f"check-seeds: FAILED, {len(DOT_COMMANDS)} finding(s)" in result.stdout
    assert "dot_iu_add_piece: in the registry, missing from the seed revisions" in result.stdout


def test_drifted_catalog_fails_the_check_naming_command_and_field(db):
    db.execute("UPDATE dot_iu_command_catalog SET inverse_command = NULL "
               "WHERE command_name = 'dot_iu_add_piece'")
    assert catalog_findings(db) == [
        "catalog and registry disagree: dot_iu_add_piece: inverse_command None in the catalog, "
        "'dot_iu_remove_piece' in the registry"
    ]
    catalog = build_report(db)["catalog"]
    assert catalog["ok"] is False and len(catalog["findings"]) == 1
    finding = catalog["findings"][0].splitlines()
    assert finding[0] == "dot_iu_add_piece: differs from schema/snapshot.txt"
    assert "inverse dot_iu_remove_piece," in finding[1] and "inverse -," in finding[2]


def test_catalog_row_missing_or_extra_fails_the_check(db):
    db.execute("DELETE FROM dot_iu_command_catalog WHERE command_name = 'dot_iu_route_deliver'")
    db.execute(HAND_ROW, ("dot_iu_custom", "health"))
    assert catalog_findings(db) == [
        "catalog and registry disagree: dot_iu_custom: in the catalog, not in the registry",
        "catalog and registry disagree: dot_iu_route_deliver: in the registry, missing from "
        "the catalog",
    ]


def test_check_seeds_is_offline_and_cannot_check_without_a_versions_folder(tmp_path):
    result = check_seeds("--url", "postgresql://nobody@127.0.0.1:1/nowhere")
    assert result.returncode == 2 and "unrecognized arguments: --url" in result.stderr
    result = check_seeds("--versions", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "not a directory" in result.stderr


# --- idempotency -----------------------------------------------------------------------------

def test_seed_sql_applied_twice_leaves_the_same_rows(db_at_0003):
    statements = seed_module().upgrade_statements()
    run_in_transaction(db_at_0003, statements)
    once = db_at_0003.execute(ROWS_SQL).fetchall()
    run_in_transaction(db_at_0003, statements)
    assert db_at_0003.execute(ROWS_SQL).fetchall() == once
    # 0004 delivers the IU Core commands; their required gates come later (0014).
    want = {name: {**row, "required_gates": []}
            for name, row in catalog_rows(IU_CORE_COMMANDS).items()}
    assert fetch_catalog(db_at_0003) == want


def test_seed_sql_on_an_already_seeded_database_changes_nothing(db):
    before = db.execute(ROWS_SQL).fetchall()
    run_in_transaction(db, seed_module().upgrade_statements())
    assert db.execute(ROWS_SQL).fetchall() == before


def test_pre_existing_row_is_kept_by_do_nothing_then_reported_and_survives_the_downgrade(
    pg, db_at_0003, alembic
):
    db_at_0003.execute(HAND_ROW, ("dot_iu_healthcheck", "read"))
    kept = db_at_0003.execute(ROWS_SQL).fetchall()
    url = pg.url(db_at_0003.info.dbname)
    alembic(url, "upgrade", "head")

    pgtap.results_eq(
        db_at_0003,
        "SELECT category, description FROM dot_iu_command_catalog "
        "WHERE command_name = 'dot_iu_healthcheck'",
        [("read", "Made by hand.")],
    )
    pgtap.row_count_is(db_at_0003, "SELECT 1 FROM dot_iu_command_catalog", len(DOT_COMMANDS))
    assert catalog_findings(db_at_0003) == [
        "catalog and registry disagree: dot_iu_healthcheck: category 'read' in the catalog, "
        "'health' in the registry"
    ]
    report = build_report(db_at_0003)
    assert exit_code(report, strict=False) == 1
    assert report["catalog"]["differences"] == [{
        "command_name": "dot_iu_healthcheck",
        "kind": "differs",
        "snapshot": "dot_iu_healthcheck: health, mutating=false, reversible=true, target "
                    "public.fn_iu_collection_healthcheck(), inverse -, gates -: Report whether "
                    "IU Core collections are healthy.",
        "database": "dot_iu_healthcheck: read, mutating=false, reversible=true, target "
                    "public.fn_iu_collection_healthcheck(), inverse -, gates -: Made by hand.",
    }]

    alembic(url, "downgrade", "0003_operator_runtime")
    assert db_at_0003.execute(ROWS_SQL).fetchall() == kept


# --- the downgrade deletes exactly its own rows ----------------------------------------------

def test_seed_downgrade_deletes_only_its_own_rows_and_a_hand_inserted_row_survives(
    db, db_url, alembic
):
    db.execute(HAND_ROW, ("dot_iu_custom", "health"))
    hand = [row for row in db.execute(ROWS_SQL).fetchall() if row[0] == "dot_iu_custom"]
    alembic(db_url, "downgrade", "0003_operator_runtime")
    assert db.execute(ROWS_SQL).fetchall() == hand
    pgtap.has_table(db, "dot_iu_command_catalog")


def test_seed_downgrade_keeps_a_seeded_row_edited_since(db, db_url, alembic):
    db.execute("UPDATE dot_iu_command_catalog SET description = 'Edited by hand.' "
               "WHERE command_name = 'dot_iu_collection_status'")
    alembic(db_url, "downgrade", "0003_operator_runtime")
    pgtap.results_eq(db, "SELECT command_name, description FROM dot_iu_command_catalog",
                     [("dot_iu_collection_status", "Edited by hand.")])


def test_seed_round_trip_leaves_the_seeded_rows_as_the_registry_says(db_at_0003, pg, alembic):
    url = pg.url(db_at_0003.info.dbname)
    alembic(url, "upgrade", "head")
    alembic(url, "downgrade", "0003_operator_runtime")
    pgtap.is_empty(db_at_0003, "SELECT * FROM dot_iu_command_catalog")
    alembic(url, "upgrade", "head")
    assert fetch_catalog(db_at_0003) == catalog_rows(DOT_COMMANDS)


def test_seed_downgrade_sql_applied_twice_deletes_nothing_more(db):
    db.execute(HAND_ROW, ("dot_iu_custom", "health"))
    statements = seed_module().downgrade_statements()
    run_in_transaction(db, statements)
    once = db.execute(ROWS_SQL).fetchall()
    run_in_transaction(db, statements)
    assert db.execute(ROWS_SQL).fetchall() == once
    later = sorted(set(catalog_rows(DOT_COMMANDS)) - set(catalog_rows(IU_CORE_COMMANDS)))
    assert [row[0] for row in once] == sorted(["dot_iu_custom", *later])  # later seeds' rows
