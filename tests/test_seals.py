"""Tamper-evident ledgers (docs/seals.md): both ledgers sealed in SHA-256 chains, governed
retirement, maintenance bound to the deleting transaction, and ``substrate verify``'s seals
section, which recomputes every link and every range with PostgreSQL's built-ins only.

Every tamper here is made the way an attacker with the owner's or a superuser's rights would
make it (triggers disabled, ``session_replication_role = replica``, ``OVERRIDING SYSTEM VALUE``,
an edited seal row), and each must show as a finding that names where it happened.
"""

from __future__ import annotations

import psycopg
import pytest
from gate_helpers import MAINTENANCE, gate_close, gate_open, write_run

from substrate import cli
from substrate.review.verify import seals

SAFE = "dot_iu_collection_status"
RETIRE = "SELECT fn_dot_iu_ledger_retire(%s, %s, %s)"


def fold(conn) -> None:
    """Seal every committed run row: the first fold records its candidate, the second (the
    writers of the first having ended) moves the watermark and seals what it moved."""
    for _ in range(2):
        conn.execute("SELECT fn_dot_iu_command_run_tally_fold()")


def history(conn, runs: int = 6) -> None:
    """Some ordinary life: plan rows, a gate opened and closed (two transitions), all sealed."""
    for _ in range(runs):
        write_run(conn, SAFE, "plan", "planned")
    gate_open(conn)
    gate_close(conn)
    fold(conn)


def check(conn, heads: tuple[str, ...] = ()) -> dict:
    return seals.section(conn, expected_heads=heads)


def links(conn, ledger: str) -> list[tuple]:
    return conn.execute(
        "SELECT action, first_id, last_id, row_count FROM dot_iu_ledger_seal"
        " WHERE ledger = %s ORDER BY seal_id", (ledger,)).fetchall()


def heads(conn) -> dict[str, str]:
    return dict(conn.execute(
        "SELECT DISTINCT ON (ledger) ledger, seal_sha256 FROM dot_iu_ledger_seal"
        " ORDER BY ledger, seal_id DESC").fetchall())


def test_ledgers_are_sealed_as_they_grow_and_verify_recomputes_them(db):
    history(db)
    assert links(db, "run") == [("seal", 1, 8, 8)]
    assert links(db, "transition") == [("seal", 1, 1, 1), ("seal", 2, 2, 1)]
    report = check(db)
    assert report["ok"], report["findings"]
    assert report["summary"].startswith("1 run link(s), 2 transition link(s); 10 sealed row(s)")
    assert report["summary"].endswith("0 run row(s) past the sealed frontier")
    chain = heads(db)
    assert report["lines"] == [f"chain heads (record them elsewhere): run head {chain['run']}; "
                               f"transition head {chain['transition']}"]
    write_run(db, SAFE, "plan", "planned")
    assert check(db)["summary"].endswith("1 run row(s) past the sealed frontier")


def test_each_link_chains_to_the_one_before_it(db):
    history(db)
    rows = db.execute("SELECT ledger, prev_sha256, seal_sha256 FROM dot_iu_ledger_seal"
                      " ORDER BY ledger, seal_id").fetchall()
    by_ledger: dict[str, list[tuple[str, str]]] = {}
    for ledger, prev, seal in rows:
        by_ledger.setdefault(ledger, []).append((prev, seal))
    for chain in by_ledger.values():
        assert chain[0][0] == seals.GENESIS
        for (_, before), (prev, _) in zip(chain, chain[1:], strict=False):
            assert prev == before
    assert len({seal for _, _, seal in rows}) == len(rows)


def test_a_column_added_to_a_ledger_later_does_not_break_old_seals(db):
    history(db)
    db.execute("ALTER TABLE dot_iu_command_run ADD COLUMN later_note text")
    db.execute("ALTER TABLE iu_gate_transition ADD COLUMN later_note text")
    report = check(db)
    assert report["ok"], report["findings"]


@pytest.mark.parametrize("how", ["disable triggers", "replica role"])
def test_a_sealed_run_row_deleted_behind_the_guard_is_found(db, how):
    history(db)
    with db.transaction():
        if how == "disable triggers":
            db.execute("ALTER TABLE dot_iu_command_run DISABLE TRIGGER ALL")
        else:
            db.execute("SET LOCAL session_replication_role = replica")
        db.execute("DELETE FROM dot_iu_command_run WHERE run_id = 3")
        if how == "disable triggers":
            db.execute("ALTER TABLE dot_iu_command_run ENABLE TRIGGER ALL")
    report = check(db)
    assert not report["ok"]
    assert report["findings"] == [
        f"run ledger: ids 1-8 (link {seal_id(db, 'run', 1)}) no longer match their seal: 1 "
        "row(s) deleted (7 rows now, 8 sealed)"]


def seal_id(conn, ledger: str, first_id: int) -> int:
    return conn.execute("SELECT seal_id FROM dot_iu_ledger_seal WHERE ledger = %s AND"
                        " first_id = %s AND action = 'seal'", (ledger, first_id)).fetchone()[0]


def test_a_sealed_run_row_updated_in_replica_mode_is_found(db):
    history(db)
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("UPDATE dot_iu_command_run SET actor = 'someone-else' WHERE run_id = 2")
    assert check(db)["findings"] == [
        f"run ledger: ids 1-8 (link {seal_id(db, 'run', 1)}) no longer match their seal: row(s) "
        "updated (8 rows now, 8 sealed)"]


def test_a_row_inserted_into_a_gap_of_a_sealed_range_is_found(db):
    write_run(db, SAFE, "plan", "planned")
    with pytest.raises(psycopg.errors.QueryCanceled), db.transaction():
        write_run(db, SAFE, "plan", "planned")  # takes id 2, then rolls back: a gap
        db.execute("SET LOCAL statement_timeout = 1")
        db.execute("SELECT pg_sleep(1)")
    write_run(db, SAFE, "plan", "planned")
    fold(db)
    assert links(db, "run") == [("seal", 1, 3, 2)]
    assert check(db)["ok"]
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute(
            "INSERT INTO dot_iu_command_run (run_id, command_name, run_mode, run_status, mutating,"
            " actor, params_digest) OVERRIDING SYSTEM VALUE SELECT 2, command_name, run_mode,"
            " run_status, mutating, actor, params_digest FROM dot_iu_command_run WHERE run_id = 1")
    (finding,) = check(db)["findings"]
    assert finding.endswith("1 row(s) inserted (3 rows now, 2 sealed)")


def test_a_row_written_below_the_first_sealed_range_is_found(db):
    history(db)
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute(
            "INSERT INTO dot_iu_command_run (run_id, command_name, run_mode, run_status, mutating,"
            " actor, params_digest) OVERRIDING SYSTEM VALUE SELECT -1, command_name, run_mode,"
            " run_status, mutating, actor, params_digest FROM dot_iu_command_run WHERE run_id = 1")
    (finding,) = check(db)["findings"]
    assert finding == ("run ledger: 1 row(s) below the first sealed or retired range (ids "
                       "under 1): written after the fact")


def test_a_transition_edited_in_replica_mode_is_found(db):
    history(db)
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("UPDATE iu_gate_transition SET reason = 'nothing to see' WHERE "
                   "transition_id = 1")
    (finding,) = check(db)["findings"]
    assert finding.startswith(f"transition ledger: ids 1-1 (link {seal_id(db, 'transition', 1)})"
                              " no longer match their seal")


def test_a_transition_written_with_its_seal_trigger_disabled_is_found(db):
    history(db)
    with db.transaction():
        db.execute("ALTER TABLE iu_gate_transition DISABLE TRIGGER tg_iu_gate_transition_seal")
        gate_open(db)
        db.execute("ALTER TABLE iu_gate_transition ENABLE TRIGGER tg_iu_gate_transition_seal")
    gate_close(db)
    (finding,) = check(db)["findings"]
    assert finding.startswith("transition ledger: transition(s) [3] were written")


def behind_the_seal_guard(conn, statement: str) -> None:
    """Change the seal chains as only their owner or a superuser can: the guard triggers fire
    ALWAYS (replica mode does not silence them), so they must be disabled, which is DDL."""
    with conn.transaction():
        for trigger in ("tg_dot_iu_ledger_seal_append_only", "tg_dot_iu_ledger_seal_no_truncate"):
            conn.execute(f"ALTER TABLE dot_iu_ledger_seal DISABLE TRIGGER {trigger}")
        conn.execute(statement)
        for trigger in ("tg_dot_iu_ledger_seal_append_only", "tg_dot_iu_ledger_seal_no_truncate"):
            conn.execute(f"ALTER TABLE dot_iu_ledger_seal ENABLE ALWAYS TRIGGER {trigger}")


def test_replica_mode_does_not_open_the_seal_chains(db):
    history(db)
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL session_replication_role = replica")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            db.execute("DELETE FROM dot_iu_ledger_seal WHERE ledger = 'run'")
    assert len(links(db, "run")) == 1


def test_an_edited_seal_link_is_found(db):
    history(db)
    behind_the_seal_guard(db, "UPDATE dot_iu_ledger_seal SET row_count = 7 WHERE ledger = 'run'")
    findings = check(db)["findings"]
    assert any("its fields no longer match its seal_sha256" in f for f in findings), findings


def test_a_deleted_middle_link_cuts_the_chain(db):
    history(db)
    behind_the_seal_guard(
        db, "DELETE FROM dot_iu_ledger_seal WHERE ledger = 'transition' AND first_id = 1")
    findings = check(db)["findings"]
    assert any("does not follow the link before it" in f for f in findings), findings


def test_a_dropped_last_link_shows_and_a_recorded_head_names_it(db):
    history(db)
    recorded = heads(db)["run"]
    assert check(db, (recorded,))["ok"]
    behind_the_seal_guard(db, "DELETE FROM dot_iu_ledger_seal WHERE ledger = 'run'")
    # The rows the tally folded are no longer covered by any link...
    assert check(db)["findings"] == [
        "run ledger: 8 row(s) (ids 1-8) lie under the tally's watermark (8) but past the last "
        "link of the run chain (0): links were removed from the end of the chain"]
    # ...and the recorded head is gone from the chain.
    findings = check(db, (recorded,))["findings"]
    assert findings[-1].startswith(f"recorded chain head {recorded[:16]}... is not in the chain")


def test_the_seal_table_is_append_only_even_for_a_superuser(db):
    history(db)
    for statement in ("UPDATE dot_iu_ledger_seal SET actor = 'x'",
                      "DELETE FROM dot_iu_ledger_seal",
                      "TRUNCATE dot_iu_ledger_seal"):
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            db.execute(statement)
    assert len(links(db, "run")) == 1


def test_chain_functions_are_not_callable_by_the_package_roles(db):
    history(db)
    for role in ("dot_iu_runtime", "dot_iu_gate_operator", "dot_iu_auditor"):
        with db.transaction():
            db.execute(f"SET LOCAL ROLE {role}")
            for call in ("SELECT fn_dot_iu_ledger_seal('run', 1, 2)",
                         "SELECT fn_dot_iu_ledger_retire(now() - interval '1 day', 'x', 'y')"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
                    db.execute(call)


def health(conn) -> list[tuple]:
    return conn.execute("SELECT * FROM v_dot_iu_command_run_health ORDER BY 1").fetchall()


def test_lawful_retirement_removes_sealed_ranges_and_keeps_verify_and_views_exact(db):
    history(db)
    write_run(db, SAFE, "plan", "planned")  # past the frontier: not sealed, so not retired
    result = db.execute(RETIRE, ("now()", "dba@example", "retention: 90 days")).fetchone()[0]
    assert result["run"]["first_id"] == 1 and result["run"]["last_id"] == 8
    assert result["run"]["rows"] == 8
    assert result["transition"]["first_id"] == 1 and result["transition"]["last_id"] == 2
    assert db.execute("SELECT array_agg(run_id) FROM dot_iu_command_run").fetchone()[0] == [9]
    assert db.execute("SELECT count(*) FROM iu_gate_transition").fetchone()[0] == 0
    # The tally was taken down row by row: the views equal a recount of what the ledger holds.
    retained = health(db)
    assert retained[0][:3] == (1, 0, 0)
    db.execute("SELECT fn_dot_iu_command_run_tally_rebuild()")
    assert health(db) == retained
    # The rebuild sealed what it moved under the watermark (run 9).
    assert links(db, "run") == [("seal", 1, 8, 8), ("retire", 1, 8, 8), ("seal", 9, 9, 1)]
    who = db.execute("SELECT actor, reason, session_login FROM dot_iu_ledger_seal"
                     " WHERE action = 'retire' AND ledger = 'run'").fetchone()
    assert who == ("dba@example", "retention: 90 days", "postgres")
    report = check(db)
    assert report["ok"], report["findings"]
    # The next ranges seal and retire the same way.
    gate_open(db)
    gate_close(db)
    fold(db)
    assert check(db)["ok"]
    db.execute(RETIRE, ("now()", "dba@example", "retention: 90 days"))
    report = check(db)
    assert report["ok"], report["findings"]
    assert db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0] == 0


@pytest.mark.parametrize(("before", "actor", "reason", "says"), [
    (None, "dba", "why", "p_before must be a moment in the past"),
    ("2999-01-01", "dba", "why", "p_before must be a moment in the past"),
    ("2000-01-01", "", "why", "actor must name who retires"),
    ("2000-01-01", "dba", " ", "reason must say why"),
])
def test_retirement_refuses_bad_input_and_changes_nothing(db, before, actor, reason, says):
    history(db)
    count = db.execute("SELECT count(*) FROM dot_iu_ledger_seal").fetchone()[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=says):
        db.execute(RETIRE, (before, actor, reason))
    assert db.execute("SELECT count(*) FROM dot_iu_ledger_seal").fetchone()[0] == count


def test_retirement_with_nothing_old_enough_does_nothing(db):
    history(db)
    result = db.execute(RETIRE, ("2000-01-01", "dba", "why")).fetchone()[0]
    assert result["run"] is None and result["transition"] is None
    assert [action for action, *_ in links(db, "run")] == ["seal"]


def test_a_stored_maintenance_setting_does_not_open_the_ledgers(db, pg):
    history(db)
    name = db.execute("SELECT current_database()").fetchone()[0]
    db.execute(f'ALTER DATABASE "{name}" SET dot_iu.ledger_maintenance = \'on\'')
    try:
        with pg.connect(name) as fresh:
            assert fresh.execute("SHOW dot_iu.ledger_maintenance").fetchone()[0] == "on"
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                fresh.execute("DELETE FROM dot_iu_command_run WHERE run_id = 1")
            # A transaction id that is not the deleting transaction's own is refused too.
            stale = fresh.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState), fresh.transaction():
                fresh.execute("SELECT set_config('dot_iu.ledger_maintenance', %s, true)",
                              (stale,))
                fresh.execute("DELETE FROM dot_iu_command_run WHERE run_id = 1")
    finally:
        db.execute(f'ALTER DATABASE "{name}" RESET dot_iu.ledger_maintenance')
    assert db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0] == 8


def test_a_raw_maintenance_delete_works_and_still_shows_in_verify(db):
    history(db)
    with db.transaction():
        db.execute(MAINTENANCE)
        db.execute("DELETE FROM dot_iu_command_run WHERE run_id = 1")
    (finding,) = check(db)["findings"]
    assert "1 row(s) deleted" in finding


def test_verify_cli_reports_seals_and_checks_a_recorded_head(capsys, db, db_url):
    history(db)
    chain = heads(db)
    assert cli.main(["verify", "--url", db_url, "--seal-head", chain["run"],
                     "--seal-head", chain["transition"]]) == 0
    out = capsys.readouterr().out
    assert f"run head {chain['run']}" in out
    assert "seals: 1 run link(s), 2 transition link(s)" in out
    assert cli.main(["verify", "--url", db_url, "--seal-head", "ab" * 32]) == 1
    assert f"recorded chain head {'ab' * 8}... is not in the chain" in capsys.readouterr().out


def test_the_upgrade_seals_the_rows_already_there(alembic, empty_db, empty_db_url):
    alembic(empty_db_url, "upgrade", "0011_gates_fail_closed")
    for _ in range(3):
        write_run(empty_db, SAFE, "plan", "planned")
    gate_open(empty_db)
    gate_close(empty_db)
    fold(empty_db)
    write_run(empty_db, SAFE, "plan", "planned")  # past the watermark
    alembic(empty_db_url, "upgrade", "0012_ledger_seals")
    assert links(empty_db, "run") == [("seal", 1, 5, 5)]
    assert links(empty_db, "transition") == [("seal", 1, 1, 1), ("seal", 2, 2, 1)]
    fold(empty_db)
    assert links(empty_db, "run")[-1] == ("seal", 6, 6, 1)
    report = check(empty_db)
    assert report["ok"], report["findings"]


def test_downgrade_refuses_while_chains_hold_links(alembic, db, db_url):
    history(db)
    result = alembic(db_url, "downgrade", "0011_gates_fail_closed", check=False)
    assert result.returncode != 0
    assert "FAILED:" in result.stdout
    assert "allow_data_loss" in result.stdout + result.stderr
    assert db.execute("SELECT count(*) FROM dot_iu_ledger_seal").fetchone()[0] == 3
    alembic(db_url, "-x", "allow_data_loss=true", "downgrade", "0011_gates_fail_closed")
    assert db.execute("SELECT to_regclass('dot_iu_ledger_seal')").fetchone()[0] is None
    assert db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0] == 8
    report = check(db)
    assert report["summary"] == "not installed (a revision before 0012_ledger_seals)"
