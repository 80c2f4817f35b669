"""`substrate verify`'s one screen: revision, objects N/N, catalog, targets, gate safety, derived
state and checksums, on a clean database, a drifted one and one at an older revision; exit codes
0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_helpers import set_value

from substrate import cli
from substrate.review import schema_snapshot as snapshot
from substrate.review.tree import Tree
from substrate.review.verify import build_report, exit_code, objects

SECTIONS = ["revision", "objects", "catalog", "targets", "gates", "derived", "privileges", "seals",
            "checksums"]


def verify(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["verify", *args])
    return code, capsys.readouterr().out


def committed_counts() -> dict[str, int]:
    _, keys = snapshot.parse_keys(snapshot.COMMITTED.read_text())
    return {section: len(items) for section, items in keys.items()
            if section not in objects.OTHERS}


def has_gate_protocol(conn) -> bool:
    return conn.execute("SELECT to_regprocedure('public.fn_iu_gate_verify_closed(text)') "
                        "IS NOT NULL").fetchone()[0]


def test_verify_on_a_clean_database_fits_one_screen_and_exits_0(capsys, db_url):
    code, out = verify(capsys, "--url", db_url)
    assert code == 0, out
    lines = out.rstrip().splitlines()
    assert len(lines) <= 40
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")][:-1] == SECTIONS
    total = sum(committed_counts().values())
    head = Tree().head()
    assert f"revision: {head} (head)" in lines
    assert f"objects: {total}/{total} present (schema/snapshot.txt at {head})" in lines
    assert any(line.startswith("gates: all_safe=true: ") for line in lines)
    applied = len(Tree().applied(head))
    assert (f"checksums: {applied} applied: {applied - 1} match, 0 changed, 1 not recorded "
            "(0001_baseline)") in lines
    assert lines[-1] == "verify: ok (unresolved targets fail only with --strict)"


def test_verify_json_has_one_stable_entry_per_section(capsys, db_url):
    code, out = verify(capsys, "--url", db_url, "--json")
    report = json.loads(out)
    assert code == 0 and report["exit"] == 0
    assert list(report["sections"]) == SECTIONS
    for section in report["sections"].values():
        assert {"ok", "strict_ok", "summary", "findings"} <= set(section)
    classes = report["sections"]["objects"]["classes"]
    assert list(classes) == [name for name in snapshot.SECTIONS if name not in objects.OTHERS]
    assert {name: c["present"] for name, c in classes.items()} == committed_counts()
    assert all(c["missing"] == [] and c["unexpected"] == [] for c in classes.values())


def test_verify_on_a_drifted_database_exits_1_and_names_what_is_missing(capsys, db, db_url):
    db.execute("DROP INDEX public.ix_dot_iu_command_run_run_status_created_at")
    db.execute("CREATE FUNCTION public.fn_dot_iu_backdoor() RETURNS integer LANGUAGE sql "
               "AS 'SELECT 1'")
    code, out = verify(capsys, "--url", db_url)
    assert code == 1
    counts = committed_counts()
    assert f"indexes {counts['indexes'] - 1}/{counts['indexes']} +0" not in out
    assert f"indexes {counts['indexes'] - 1}/{counts['indexes']}," in out
    assert f"functions {counts['functions']}/{counts['functions']} +1" in out
    assert "  - indexes: missing public.ix_dot_iu_command_run_run_status_created_at" in out
    assert "  - functions: unexpected public.fn_dot_iu_backdoor()" in out
    assert out.rstrip().endswith("verify: FINDINGS")


def test_verify_at_an_older_revision_exits_1_and_lists_what_is_pending(capsys, empty_db,
                                                                      empty_db_url, alembic):
    alembic(empty_db_url, "upgrade", "0003_operator_runtime")
    code, out = verify(capsys, "--url", empty_db_url, "--json")
    sections = json.loads(out)["sections"]
    assert code == 1
    revision = sections["revision"]
    pending = Tree().pending("0003_operator_runtime")
    assert revision["pending"] == pending and pending[0] == "0004_seed_catalog"
    assert revision["findings"] == [f"{len(pending)} revision(s) not applied: "
                                    f"{', '.join(pending)}"]
    assert sections["checksums"]["counts"] == {"match": 2, "changed": 0, "not recorded": 1}
    assert sections["gates"]["summary"] == "not checked (gate protocol not installed)"
    assert sections["gates"]["ok"] is True
    assert sections["objects"]["classes"]["catalog"]["present"] == 0
    assert "error" not in sections["objects"]


def test_a_never_flip_gate_that_is_open_fails_verify(db):
    set_value(db, "iu_core.vector_sync_enabled", "true")  # only with the guard bypassed
    gates = build_report(db)["gates"]
    assert gates["ok"] is False and gates["never_flip_intact"] is False
    assert "never-flip gate iu_core.vector_sync_enabled is 'true'" in gates["findings"]


def test_a_governable_gate_set_open_by_hand_is_judged(db):
    set_value(db, "iu_core.composer_enabled", "true")  # only with the guard bypassed
    report = build_report(db)
    gates = report["gates"]
    if has_gate_protocol(db):  # open without a window on record: orphaned
        assert gates["ok"] is False and exit_code(report, strict=False) == 1
        assert gates["findings"] == ["governable gate iu_core.composer_enabled is open without "
                                     "a live window (orphaned: fn_iu_gate_watchdog closes it)"]
    else:  # no protocol: the classes are unknown, nothing is judged
        assert gates["ok"] is True and gates["findings"] == []


def test_a_governable_gate_open_inside_its_window_fails_only_strict(db):
    if not has_gate_protocol(db):
        pytest.skip("the gate protocol (fn_iu_gate_open) is not in this tree")
    db.execute("SELECT public.fn_iu_gate_open('iu_core.composer_enabled', 'APPROVAL-1', "
               "'ops', 'test window', 600)")
    report = build_report(db)
    gates = report["gates"]
    assert gates["ok"] is True and gates["strict_ok"] is False
    assert gates["findings"][0].startswith("iu_core.composer_enabled is open until ")
    assert gates["findings"][0].endswith("(a finding only with --strict)")


def test_verify_exits_2_at_a_revision_this_tree_does_not_have(capsys, db, db_url):
    db.execute("UPDATE public.alembic_version SET version_num = '9999_from_a_newer_tree'")
    code, out = verify(capsys, "--url", db_url)
    assert code == 2
    assert "9999_from_a_newer_tree, which this tree does not have" in out
    assert out.rstrip().endswith("verify: COULD NOT CHECK")


def test_the_inventory_cannot_check_against_a_stale_snapshot(db, tmp_path):
    stale = tmp_path / "snapshot.txt"
    stale.write_text(snapshot.COMMITTED.read_text().replace(
        f"# revision: {Tree().head()}", "# revision: 0003_operator_runtime"))
    section = objects.section(db, Tree(), stale)
    assert "run: make schema" in section["error"]
    assert exit_code({"objects": section}, strict=False) == 2


def test_a_database_alembic_never_ran_on_is_a_finding(capsys, empty_db_url):
    code, out = verify(capsys, "--url", empty_db_url, "--json")
    sections = json.loads(out)["sections"]
    assert code == 1
    assert sections["revision"]["findings"][0].startswith("Alembic has never run here")
    assert sections["checksums"]["revisions"] == []


def test_derived_state_in_step_is_reported_and_not_a_finding(capsys, db, db_url):
    db.execute("SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', 'ops',"
               " '0123456789abcdef0123456789abcdef')")
    code, out = verify(capsys, "--url", db_url)
    assert code == 0, out
    assert "derived: gate snapshot fresh; tally watermark at run_id 0, 1 row(s) past it" in out


@pytest.mark.parametrize("damage,finding", [
    ("UPDATE dot_iu_gate_snapshot SET snapshot = '{}'",
     "differs from what the gate readers say (repair: SELECT"
     " public.fn_dot_iu_gate_snapshot_refresh())"),
    ("DELETE FROM dot_iu_gate_snapshot", "public.dot_iu_gate_snapshot has no row"),
    ("DELETE FROM dot_iu_command_run_tally_watermark",
     "the views undercount and maintenance deletes are refused (repair: SELECT"
     " public.fn_dot_iu_command_run_tally_rebuild())"),
])
def test_derived_state_out_of_step_is_a_finding_with_its_repair(capsys, db, db_url, damage,
                                                                 finding):
    db.execute(damage)
    code, out = verify(capsys, "--url", db_url, "--json")
    report = json.loads(out)["sections"]["derived"]
    assert code == 1 and report["ok"] is False
    assert any(finding in line for line in report["findings"]), report["findings"]
    for repair in ("SELECT fn_dot_iu_gate_snapshot_refresh()",
                   "SELECT fn_dot_iu_command_run_tally_rebuild()"):
        db.execute(repair)
    assert verify(capsys, "--url", db_url)[0] == 0



def test_open_gates_left_behind_by_a_replaced_generation_function_is_a_finding(
        capsys, db, db_url):
    """A stored generated column keeps its value when its function is replaced: verify
    recomputes open_gates from the snapshot itself, and a refresh (a rewrite of the row) repairs
    it."""
    keys = (Path(__file__).resolve().parents[1] / "sql_functions"
            / "fn_dot_iu_gate_open_keys.v1.sql").read_text()
    # Every gate is closed here: a body that names the closed ones writes all of them, then v1
    # comes back without the row being written again.
    db.execute(keys.replace("WHERE e.value = 'true'", "WHERE e.value <> 'true'", 1))
    db.execute("UPDATE dot_iu_gate_snapshot SET snapshot = snapshot")
    db.execute(keys)
    assert len(db.execute("SELECT open_gates FROM dot_iu_gate_snapshot").fetchone()[0]) == 9
    assert db.execute("SELECT fn_dot_iu_gate_open_keys(snapshot) FROM dot_iu_gate_snapshot"
                      ).fetchone()[0] == []
    code, out = verify(capsys, "--url", db_url, "--json")
    report = json.loads(out)["sections"]["derived"]
    assert code == 1 and report["gate_snapshot"] == "STALE"
    assert report["findings"] == [
        "public.dot_iu_gate_snapshot.open_gates differs from the gates its snapshot reads open:"
        " the logger's gate rule reads it (repair: SELECT"
        " public.fn_dot_iu_gate_snapshot_refresh())"]
    db.execute("SELECT fn_dot_iu_gate_snapshot_refresh()")
    assert db.execute("SELECT open_gates FROM dot_iu_gate_snapshot").fetchone()[0] == []
    assert verify(capsys, "--url", db_url)[0] == 0


def test_derived_state_before_0009_is_not_installed_and_not_a_finding(empty_db, empty_db_url,
                                                                      alembic):
    from substrate.review.verify import derived

    alembic(empty_db_url, "upgrade", "0008_run_tally")
    section = derived.section(empty_db)
    assert section["ok"] is True and section["installed"] is False
    assert section["summary"] == "not installed (a revision before 0009_tally_watermark)"


def test_verify_runs_without_a_statement_limit_unless_the_environment_sets_one(
        capsys, monkeypatch, db_url):
    """Recomputing every seal of a large ledger takes as long as it takes (docs/seals.md); the
    30 s default of the operational commands would cut it short."""
    from substrate import connect

    seen = []
    real = connect.connect

    def recording(*args, **kwargs):
        conn = real(*args, **kwargs)
        seen.append(conn.execute("SHOW statement_timeout").fetchone()[0])
        return conn

    monkeypatch.setattr(connect, "connect", recording)
    monkeypatch.delenv(connect.STATEMENT_TIMEOUT_ENV, raising=False)
    assert verify(capsys, "--url", db_url)[0] == 0
    assert seen and set(seen) == {"0"}
    seen.clear()
    monkeypatch.setenv(connect.STATEMENT_TIMEOUT_ENV, "45")
    assert verify(capsys, "--url", db_url)[0] == 0
    assert set(seen) == {"45s"}
