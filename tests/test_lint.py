"""`make lint`'s SQL half: every silenced squawk rule names one statement and says why."""

from __future__ import annotations

import pytest
from conftest import render_sql

from substrate.review import sqllint
from substrate.review.tree import Tree


@pytest.fixture(scope="module")
def chunks():
    return sqllint.split(render_sql("upgrade", "base:head"))


def test_the_rendered_upgrade_splits_into_one_transaction_per_revision(chunks):
    tree = Tree()
    assert [name for name, _ in chunks] == tree.applied(tree.head())
    for _, lines in chunks:
        assert lines[-1] == "COMMIT;" and "BEGIN;" in lines
    assert chunks[0][1][0].startswith("-- Rendered by the substrate Alembic environment")


def test_every_squawk_ignore_silences_exactly_one_statement_with_a_reason(chunks):
    entries = sqllint.read_ignores()
    for entry in entries:
        assert len(entry.reason.split()) >= 5, f"line {entry.line}: give a one-line reason"
        assert "\n" not in entry.reason
    before = sum(len(lines) for _, lines in chunks)
    sqllint.annotate(chunks, entries)
    inserted = [line.strip() for _, lines in chunks for line in lines
                if line.strip().startswith("-- squawk-ignore ")]
    assert len(inserted) == len(entries) == sum(len(lines) for _, lines in chunks) - before
    assert sorted(inserted) == sorted(f"-- squawk-ignore {e.rule} -- {e.reason}" for e in entries)


def test_an_ignore_that_matches_no_statement_or_several_is_an_error(chunks):
    missing = sqllint.Ignore("0001_baseline", "ban-drop-table", "DROP TABLE nothing", "why", 1)
    with pytest.raises(sqllint.LintError, match="0 lines of 0001_baseline"):
        sqllint.annotate(chunks, [missing])
    several = sqllint.Ignore("0001_baseline", "x", "COMMENT ON COLUMN", "why", 2)
    with pytest.raises(sqllint.LintError, match="an entry silences exactly one statement"):
        sqllint.annotate(chunks, [several])
    unknown = sqllint.Ignore("9999_nowhere", "x", "SELECT", "why", 3)
    with pytest.raises(sqllint.LintError, match="no revision 9999_nowhere"):
        sqllint.annotate(chunks, [unknown])


def test_a_malformed_ignore_line_is_refused(tmp_path):
    path = tmp_path / "squawk-ignores.txt"
    path.write_text("# comment\n\n0001_baseline | rule-without-reason | CREATE TABLE\n")
    with pytest.raises(sqllint.LintError, match=":3: expected"):
        sqllint.read_ignores(path)
