"""Applied-migration checksums: the history table records what ran (online and from the rendered
SQL alike); `substrate verify` re-renders every applied revision and catches an edited one."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import PROJECT_ROOT, _alembic_tree, render_sql

from substrate import cli
from substrate.review import checksums
from substrate.review import schema_snapshot as snapshot
from substrate.review.tree import Tree
from substrate.review.verify import checksums as verify_checksums

HISTORY = ("SELECT revision, direction, sql_sha256 FROM substrate_migration_history "
           "ORDER BY history_id")


@pytest.fixture
def edited_tree(tmp_path):
    """A copy of the tree whose 0003_operator_runtime was edited after it was applied."""
    versions = tmp_path / "versions"
    shutil.copytree(PROJECT_ROOT / "alembic" / "versions", versions,
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = versions / "0003_operator_runtime.py"
    original = "'Whether applying the command changes IU Core state.'"
    assert original in path.read_text()
    path.write_text(path.read_text().replace(original, "'Quietly edited after release.'"))
    return _alembic_tree(versions, tmp_path)


def verify(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["verify", *args])
    return code, capsys.readouterr().out


def test_substrate_rendering_gives_the_digests_env_py_records(pg, migrated_template):
    """substrate/review/checksums.py repeats env.py's render_step: both give the same SHA-256."""
    tree = Tree()
    with pg.connect(migrated_template) as conn:
        rows = conn.execute(HISTORY).fetchall()
        applied = tree.applied(snapshot.revision(conn))
    assert [revision for revision, _, _ in rows] == applied[1:]  # the baseline predates it
    for revision, direction, recorded in rows:
        assert direction == "upgrade"
        assert checksums.digest(tree.module(revision), "upgrade") == recorded, revision


def test_downgrade_steps_record_the_digest_of_their_downgrade(pg, db, db_url, alembic):
    tree = Tree()
    alembic(db_url, "downgrade", "0003_operator_runtime")
    rows = db.execute(HISTORY + " DESC").fetchall()
    downgraded = [row for row in rows if row[1] == "downgrade"]
    assert downgraded, rows
    for revision, _, recorded in downgraded:
        assert checksums.digest(tree.module(revision), "downgrade") == recorded, revision


def test_rendered_sql_records_the_online_checksums_and_verify_accepts_them(
        pg, migrated_template, empty_db_name, psql):
    psql(empty_db_name, render_sql("upgrade", "base:head"))
    with pg.connect(empty_db_name) as offline, pg.connect(migrated_template) as online:
        modes = offline.execute("SELECT DISTINCT mode FROM substrate_migration_history")
        assert modes.fetchall() == [("offline",)]
        assert offline.execute(HISTORY).fetchall() == online.execute(HISTORY).fetchall()
        section = verify_checksums.section(offline, snapshot.revision(offline), Tree())
    assert section["ok"] and section["counts"]["changed"] == 0
    assert section["counts"]["match"] == len(Tree().applied(Tree().head())) - 1


def test_an_applied_revision_edited_afterwards_is_caught_by_verify(db_url, edited_tree, capsys):
    code, out = verify(capsys, "--url", db_url, "--alembic-ini", str(edited_tree))
    assert code == 1
    assert "checksums: " in out and ", 1 changed, 1 not recorded (0001_baseline)" in out
    assert "  - 0003_operator_runtime: applied with sha256 " in out
    assert "the revision was edited after it was applied" in out
    code, out = verify(capsys, "--url", db_url, "--alembic-ini", str(edited_tree), "--json")
    entries = json.loads(out)["sections"]["checksums"]["revisions"]
    assert code == 1
    assert [e["revision"] for e in entries if e["status"] == "changed"] == \
        ["0003_operator_runtime"]
    changed = next(e for e in entries if e["status"] == "changed")
    assert changed["recorded"]["sha256"] != changed["rendered_sha256"]
    assert changed["recorded"]["mode"] == "online"


def test_the_unedited_tree_passes_and_the_baseline_is_not_recorded_not_drift(db):
    section = verify_checksums.section(db, snapshot.revision(db), Tree())
    assert section["ok"] is True and section["findings"] == []
    first = section["revisions"][0]
    assert (first["revision"], first["status"], first["recorded"]) == \
        ("0001_baseline", "not recorded", None)
    assert {e["status"] for e in section["revisions"][1:]} == {"match"}


def test_only_the_latest_upgrade_row_of_a_revision_counts(db):
    tree = Tree()
    good = checksums.digest(tree.module("0003_operator_runtime"))
    db.execute("INSERT INTO substrate_migration_history (revision, direction, sql_sha256, mode) "
               "VALUES ('0003_operator_runtime', 'upgrade', %s, 'online')", ("0" * 64,))
    statuses = {e["revision"]: e["status"]
                for e in checksums.statuses(db, snapshot.revision(db), tree)}
    assert statuses["0003_operator_runtime"] == "changed"
    db.execute("INSERT INTO substrate_migration_history (revision, direction, sql_sha256, mode) "
               "VALUES ('0003_operator_runtime', 'upgrade', %s, 'offline')", (good,))
    statuses = {e["revision"]: e["status"]
                for e in checksums.statuses(db, snapshot.revision(db), tree)}
    assert statuses["0003_operator_runtime"] == "match"


def test_revisions_not_applied_are_not_compared(db, edited_tree):
    entries = checksums.statuses(db, "0002_migration_history", Tree(edited_tree))
    assert [(e["revision"], e["status"]) for e in entries] == [
        ("0001_baseline", "not recorded"), ("0002_migration_history", "match")]


def test_a_database_without_history_reports_every_revision_as_not_recorded(db):
    db.execute("SET dot_iu.ledger_maintenance = 'on'")
    db.execute("DELETE FROM substrate_migration_history")
    section = verify_checksums.section(db, snapshot.revision(db), Tree())
    assert section["ok"] is True
    assert section["counts"]["match"] == 0
    assert section["counts"]["not recorded"] == len(section["revisions"])
