"""`substrate verify`: catalog size and target-function resolution (SPEC 3.3, 6).

The 15 target functions belong to IU Core; tests/fixtures/iu_core_standins.sql holds clearly
labelled stand-ins with their exact signatures to prove the all-resolvable path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seeds.registry import DOT_COMMANDS, target_functions
from substrate import cli
from substrate.review.verify import build_report, exit_code

STANDINS = Path(__file__).resolve().parent / "fixtures" / "iu_core_standins.sql"
SIGNATURES = [target.signature for target in target_functions()]


@pytest.fixture
def standins(db):
    """The migrated clone with the IU Core stand-ins loaded."""
    db.execute(STANDINS.read_text())
    return db


def verify(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["verify", *args])
    return code, capsys.readouterr().out


def test_standin_fixture_has_exactly_the_registry_signatures_and_says_it_is_a_stand_in(db):
    db.execute(STANDINS.read_text())
    rows = db.execute(
        "SELECT n.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')', "
        "       obj_description(p.oid, 'pg_proc') "
        "  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        " WHERE obj_description(p.oid, 'pg_proc') LIKE 'TEST STAND-IN%' ORDER BY 1"
    ).fetchall()
    assert [signature for signature, _ in rows] == SIGNATURES
    assert len(SIGNATURES) == 15
    assert STANDINS.read_text().startswith("-- TEST STAND-INS, NOT IU CORE.")


def test_bare_database_resolves_none_of_the_15_targets_and_lists_them(db):
    report = build_report(db)
    size = len(DOT_COMMANDS)
    assert report["catalog"]["catalog_size"] == report["catalog"]["snapshot_size"] == size
    assert report["catalog"]["ok"] is True
    targets = report["targets"]
    assert (targets["distinct"], targets["resolved"]) == (15, 0)
    assert targets["unresolved"] == SIGNATURES
    assert exit_code(report, strict=False) == 0
    assert exit_code(report, strict=True) == 1


def test_bare_database_text_report_passes_and_fails_only_with_strict(capsys, db_url):
    code, out = verify(capsys, "--url", db_url)
    assert code == 0
    size = len(DOT_COMMANDS)
    assert f"catalog: {size} rows, snapshot {size}: matches schema/snapshot.txt" in out
    assert "targets: 15 distinct target functions, 0 resolve in pg_proc" in out
    assert ("  - unresolved public.fn_iu_collection_healthcheck() "
            "(called by dot_iu_collection_status, dot_iu_healthcheck)") in out
    assert out.rstrip().endswith("verify: ok (unresolved targets fail only with --strict)")
    code, out = verify(capsys, "--url", db_url, "--strict")
    assert code == 1 and out.rstrip().endswith("verify: FINDINGS")


def test_bare_database_json_report(capsys, db_url):
    code, out = verify(capsys, "--url", db_url, "--json")
    report = json.loads(out)
    assert code == 0 and report["exit"] == 0 and report["strict"] is False
    assert report["sections"]["targets"]["resolved"] == 0
    assert report["sections"]["targets"]["unresolved"] == SIGNATURES
    code, out = verify(capsys, "--url", db_url, "--json", "--strict")
    assert code == 1 and json.loads(out)["exit"] == 1


def test_database_with_the_standins_resolves_all_15_and_passes_strict(capsys, standins, db_url):
    report = build_report(standins)
    assert (report["targets"]["distinct"], report["targets"]["resolved"]) == (15, 15)
    assert report["targets"]["findings"] == []
    code, out = verify(capsys, "--url", db_url, "--strict")
    assert code == 0
    assert "targets: 15 distinct target functions, 15 resolve in pg_proc" in out
    assert out.rstrip().endswith("verify: ok")
    code, out = verify(capsys, "--url", db_url, "--strict", "--json")
    targets = json.loads(out)["sections"]["targets"]
    assert code == 0 and targets["resolved"] == 15 and targets["unresolved"] == []


def test_a_function_with_the_right_name_but_other_parameters_does_not_resolve(standins):
    standins.execute("DROP FUNCTION public.fn_iu_piece_restore(uuid)")
    standins.execute("CREATE FUNCTION public.fn_iu_piece_restore(p_piece_id text) RETURNS jsonb "
                     "LANGUAGE sql AS 'SELECT NULL::jsonb'")
    targets = build_report(standins)["targets"]
    assert targets["resolved"] == 14
    assert targets["unresolved"] == ["public.fn_iu_piece_restore(uuid)"]
    assert targets["findings"] == [
        "unresolved public.fn_iu_piece_restore(uuid) (called by dot_iu_restore_piece); "
        "same name, other parameters: public.fn_iu_piece_restore(text)"
    ]


def test_a_catalog_that_differs_from_the_snapshot_is_a_finding_without_strict(capsys, db, db_url):
    db.execute("UPDATE dot_iu_command_catalog SET reversible = false "
               "WHERE command_name = 'dot_iu_restore_piece'")
    code, out = verify(capsys, "--url", db_url)
    assert code == 1
    size = len(DOT_COMMANDS)
    assert f"catalog: {size} rows, snapshot {size}: 1 command(s) differ" in out
    row = ("lifecycle, mutating=true, reversible={}, target public.fn_iu_piece_restore(uuid), "
           "inverse dot_iu_delete_piece_soft, gates iu_core.structure_ops_enabled: Restore a "
           "soft-deleted piece.")
    assert (f"  - dot_iu_restore_piece: differs from schema/snapshot.txt\n"
            f"    snapshot: dot_iu_restore_piece: {row.format('true')}\n"
            f"    database: dot_iu_restore_piece: {row.format('false')}\n") in out


def test_a_database_without_the_catalog_table_is_a_finding(capsys, empty_db_url):
    code, out = verify(capsys, "--url", empty_db_url, "--json")
    catalog = json.loads(out)["sections"]["catalog"]
    assert code == 1 and catalog["present"] is False and catalog["catalog_size"] is None


def test_verify_reads_database_url_and_accepts_both_url_spellings(capsys, monkeypatch, db_url):
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert verify(capsys)[0] == 0
    plain = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    assert verify(capsys, "--url", plain)[0] == 0


def test_verify_exits_2_when_it_cannot_check(capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.main(["verify"]) == 2
    assert cli.main(["verify", "--url", "postgresql://nobody@127.0.0.1:1/nowhere"]) == 2
    assert "cannot check" in capsys.readouterr().err
