"""Released history is locked (docs/maintaining.md): `make check-history` fails on any edit of a
released revision, of a function or view version file it reads, or of the revision helpers it
imports, naming the file and the revision; it passes on the committed tree; `make lock-history`
releases new revisions and never rewrites a locked line.

Each test works on a copy of the project tree (alembic.ini, alembic/, sql_functions/,
sql_views/ and the committed lock) and runs the check in a subprocess, as `make` does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from substrate.review.tree import Tree

HEAD = Tree().head()

IMMUTABLE = "released revisions are immutable: add a new version and a new revision"


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "alembic.ini", root / "alembic.ini")
    for folder in ("alembic", "sql_functions", "sql_views"):
        shutil.copytree(PROJECT_ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return root


def history(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "substrate.review.history", *args,
                           "--root", str(root)], capture_output=True, text=True,
                          cwd=PROJECT_ROOT)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_committed_tree_passes_and_every_revision_is_locked():
    result = history(PROJECT_ROOT, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unchanged" in result.stdout


def test_make_check_history_is_part_of_make_test():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "test: install check-history" in makefile


def test_an_edited_released_function_file_fails_naming_it_and_its_revisions(tree):
    edit(tree / "sql_functions" / "fn_iu_gate_open.v1.sql", "is already open",
         "is open already")
    result = history(tree, "check")
    assert result.returncode == 1
    assert ("sql_functions/fn_iu_gate_open.v1.sql: a file released revision 0006_gate_protocol "
            f"reads changed: {IMMUTABLE}") in result.stdout
    assert "0006_gate_protocol: its rendered upgrade SQL changed" in result.stdout
    assert "0009_tally_watermark: its rendered downgrade SQL changed" in result.stdout


def test_an_edited_released_revision_fails_even_when_its_sql_is_unchanged(tree):
    edit(tree / "alembic" / "versions" / "0003_operator_runtime.py",
         '"""Operator-runtime substrate', '"""The operator-runtime substrate')
    result = history(tree, "check")
    assert result.returncode == 1
    assert ("alembic/versions/0003_operator_runtime.py: the file of released revision "
            f"0003_operator_runtime changed: {IMMUTABLE}") in result.stdout
    assert "rendered" not in result.stdout


def test_an_edited_released_view_file_fails(tree):
    edit(tree / "sql_views" / "v_dot_iu_gates.v1.sql", "AS orphaned", "AS is_orphaned")
    result = history(tree, "check")
    assert result.returncode == 1
    assert ("sql_views/v_dot_iu_gates.v1.sql: a file released revision 0011_gates_fail_closed "
            f"reads changed: {IMMUTABLE}") in result.stdout


def test_an_edited_revision_helper_fails_for_every_revision_that_imports_it(tree):
    edit(tree / "alembic" / "helpers" / "revision_helpers_v1.py",
         "SET LOCAL lock_timeout", "SET LOCAL  lock_timeout")
    result = history(tree, "check")
    assert result.returncode == 1
    for revision in ("0010_least_privilege", "0013_runtime_substrate",
                     "0014_seed_required_gates"):
        assert (f"alembic/helpers/revision_helpers_v1.py: a file released revision {revision} "
                "reads changed") in result.stdout


def test_a_deleted_released_revision_fails(tree):
    (tree / "alembic" / "versions" / f"{HEAD}.py").unlink()
    result = history(tree, "check")
    assert result.returncode == 1
    assert f"{HEAD}: in alembic/history.lock but not in the tree" in result.stdout


def test_a_new_revision_fails_until_it_is_locked_and_lock_never_rewrites_a_line(tree):
    new = tree / "alembic" / "versions" / "0099_example.py"
    new.write_text(
        f'"""Example\n\nRevision ID: 0099_example\nRevises: {HEAD}\n"""\n'
        "import revision_helpers_v1 as h\n\n"
        f'revision = "0099_example"\ndown_revision = "{HEAD}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade():\n    h.begin(expected_version=down_revision)\n\n\n"
        "def downgrade():\n    h.begin(expected_version=revision)\n")
    result = history(tree, "check")
    assert result.returncode == 1 and "0099_example: not in alembic/history.lock" in result.stdout
    lock = tree / "alembic" / "history.lock"
    before = lock.read_text()
    assert history(tree, "lock").returncode == 0
    after = lock.read_text()
    assert after.startswith(before.rstrip("\n")), "the released lines are untouched"
    assert "0099_example upgrade -" in after
    assert history(tree, "check").returncode == 0

    # An edit of the head before its release: only a deliberate relock accepts it.
    edit(new, 'h.begin(expected_version=down_revision)',
         'h.begin(expected_version=down_revision)\n    h.execute("SELECT 1")')
    assert history(tree, "check").returncode == 1
    assert history(tree, "lock").returncode == 1, "lock does not rewrite a locked line"
    assert history(tree, "lock", "--relock", "0013_runtime_substrate").returncode == 2
    relocked = history(tree, "lock", "--relock", "0099_example")
    assert relocked.returncode == 0 and "re-locked 0099_example" in relocked.stdout
    assert history(tree, "check").returncode == 0
    assert lock.read_text().startswith(before.rstrip("\n"))
