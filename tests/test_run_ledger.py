"""The run ledger and its only writer, fn_dot_iu_command_log (SPEC 3.2)."""

from __future__ import annotations

import pgtap
import pytest
from gate_helpers import MAINTENANCE
from psycopg import sql

DIGEST = "0123456789abcdef0123456789abcdef"
# The seeded catalog holds dot_iu_healthcheck (health, not mutating).
EMPTY_CATALOG = "DELETE FROM dot_iu_command_catalog"


def log(mode="plan", status="planned", command="dot_iu_healthcheck", actor="ops@example",
        digest=DIGEST):
    return (
        f"SELECT fn_dot_iu_command_log('{command}', '{mode}', '{status}', '{actor}', '{digest}')"
    )


def ledger_rows(conn) -> int:
    return conn.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0]


def test_logger_is_ungated_and_returns_run_id_with_every_gate_shut(db):
    pgtap.is_empty(db, "SELECT key FROM dot_config WHERE value <> 'false'")
    run_id = db.execute(log()).fetchone()[0]
    assert isinstance(run_id, int)
    pgtap.results_eq(
        db, "SELECT run_id, command_name, run_mode, run_status FROM dot_iu_command_run",
        [(run_id, "dot_iu_healthcheck", "plan", "planned")],
    )


def test_logger_records_a_refused_run_in_any_mode(db):
    for mode in ("plan", "apply", "verify"):
        db.execute(log(mode=mode, status="refused"))
        db.execute(log(mode=mode, status="failed"))
    pgtap.row_count_is(db, "SELECT 1 FROM dot_iu_command_run WHERE run_status = 'refused'", 3)
    pgtap.row_count_is(db, "SELECT 1 FROM dot_iu_command_run WHERE run_status = 'failed'", 3)


def test_logger_snapshots_every_gate_when_none_is_given(db):
    db.execute(log())
    snapshot = db.execute("SELECT gate_snapshot FROM dot_iu_command_run").fetchone()[0]
    assert snapshot["iu_core.operator_runtime_enabled"] == "false"
    assert snapshot["iu_enact.allow_no_review_decision"] == "false"
    assert len(snapshot) == 9


def test_uncatalogued_command_is_refused_once_the_catalog_has_rows(db):
    pgtap.row_count_is(db, "SELECT 1 FROM dot_iu_command_catalog LIMIT 1", 1)
    pgtap.throws_ok(db, log(command="dot_iu_not_in_catalog"), "23503",
                    "dot_iu_not_in_catalog")
    assert ledger_rows(db) == 0
    pgtap.lives_ok(db, log(command="dot_iu_healthcheck"))
    assert ledger_rows(db) == 1


def test_logger_copies_mutating_from_the_catalog(db):
    db.execute(log())
    db.execute(log(command="dot_iu_add_piece", mode="apply", status="refused"))
    pgtap.results_eq(db, "SELECT command_name, mutating FROM dot_iu_command_run ORDER BY run_id",
                     [("dot_iu_healthcheck", False), ("dot_iu_add_piece", True)])


def test_uncatalogued_command_is_recorded_as_mutating_while_the_catalog_is_empty(db):
    db.execute(EMPTY_CATALOG)
    db.execute(log(command="dot_iu_anything"))
    pgtap.results_eq(db, "SELECT mutating FROM dot_iu_command_run", [(True,)])


@pytest.mark.parametrize(
    "call,constraint",
    [
        (log(mode="execute", status="applied"), "ck_dot_iu_command_run_run_mode"),
        (log(mode="apply", status="done"), "ck_dot_iu_command_run_run_status"),
        (log(mode="plan", status="applied"), "ck_dot_iu_command_run_status_matches_mode"),
        (log(mode="apply", status="verified"), "ck_dot_iu_command_run_status_matches_mode"),
        (log(mode="verify", status="planned"), "ck_dot_iu_command_run_status_matches_mode"),
        (log(digest="collection_id=42"), "ck_dot_iu_command_run_params_digest_md5"),
        (log(digest=DIGEST.upper()), "ck_dot_iu_command_run_params_digest_md5"),
        (log(digest=DIGEST[:31]), "ck_dot_iu_command_run_params_digest_md5"),
        (log(digest=DIGEST + "0"), "ck_dot_iu_command_run_params_digest_md5"),
        (log(actor=""), "ck_dot_iu_command_run_actor_not_blank"),
        (log(actor="   "), "ck_dot_iu_command_run_actor_not_blank"),
        (log(actor="\t"), "ck_dot_iu_command_run_actor_not_blank"),
        (log(actor="\n \r"), "ck_dot_iu_command_run_actor_not_blank"),
        (log(command="not_a_dot_iu_command"), "ck_dot_iu_command_run_command_name"),
    ],
)
def test_bad_input_raises_23514_and_writes_nothing(db, call, constraint):
    db.execute(EMPTY_CATALOG)  # the constraints hold even before the vocabulary does
    pgtap.throws_ok(db, call, "23514", constraint)
    assert ledger_rows(db) == 0


def test_null_actor_raises_23502_and_writes_nothing(db):
    pgtap.throws_ok(
        db, f"SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', NULL, "
        f"'{DIGEST}')", "23502")
    assert ledger_rows(db) == 0


def test_update_of_a_ledger_row_is_always_refused(db):
    db.execute(log())
    pgtap.throws_ok(db, "UPDATE dot_iu_command_run SET actor = 'someone else'", "55000",
                    "append-only")
    with db.transaction():
        db.execute(MAINTENANCE)
        pgtap.throws_ok(db, "UPDATE dot_iu_command_run SET actor = 'x'", "55000")
    pgtap.results_eq(db, "SELECT actor FROM dot_iu_command_run", [("ops@example",)])


def test_delete_is_refused_outside_maintenance(db):
    db.execute(log())
    pgtap.throws_ok(db, "DELETE FROM dot_iu_command_run", "55000", "outside maintenance")
    # Truncate the ledger together with every table that references it, so the refusal seen
    # is the append-only trigger's and not the foreign key's.
    referencing = db.execute(
        "SELECT string_agg(conrelid::regclass::text, ', ') FROM pg_constraint"
        " WHERE confrelid = 'dot_iu_command_run'::regclass AND contype = 'f'").fetchone()[0]
    tables = ", ".join(filter(None, ["dot_iu_command_run", referencing]))
    pgtap.throws_ok(db, f"TRUNCATE {tables}", "55000", "outside maintenance")
    assert ledger_rows(db) == 1


def test_delete_is_allowed_inside_a_maintenance_transaction_only(db):
    db.execute(log())
    db.execute(log())
    with db.transaction():
        db.execute(MAINTENANCE)
        db.execute("DELETE FROM dot_iu_command_run WHERE run_id = (SELECT min(run_id) "
                   "FROM dot_iu_command_run)")
    assert ledger_rows(db) == 1
    pgtap.throws_ok(db, "DELETE FROM dot_iu_command_run", "55000")
    assert ledger_rows(db) == 1


@pytest.mark.parametrize("switch", [
    "SET LOCAL dot_iu.ledger_maintenance = 'on'",
    "SET dot_iu.ledger_maintenance = 'on'",
    "SELECT set_config('dot_iu.ledger_maintenance', (pg_current_xact_id()::text::bigint - 1)"
    "::text, true)",
])
def test_a_maintenance_switch_that_does_not_name_this_transaction_opens_nothing(db, switch):
    db.execute(log())
    with db.transaction(force_rollback=True):
        db.execute(switch)
        pgtap.throws_ok(db, "DELETE FROM dot_iu_command_run", "55000", "outside maintenance")
    assert ledger_rows(db) == 1


def test_a_database_or_role_level_maintenance_setting_opens_nothing(pg, db, db_name):
    """ALTER DATABASE/ROLE ... SET leaves a value in every new session: it must not count."""
    db.execute(log())
    db.execute(sql.SQL("ALTER DATABASE {} SET dot_iu.ledger_maintenance = 'on'").format(
        sql.Identifier(db_name)))
    try:
        with pg.connect(db_name) as fresh:
            assert fresh.execute("SHOW dot_iu.ledger_maintenance").fetchone()[0] == "on"
            pgtap.throws_ok(fresh, "DELETE FROM dot_iu_command_run", "55000",
                            "outside maintenance")
    finally:
        db.execute(sql.SQL("ALTER DATABASE {} RESET dot_iu.ledger_maintenance").format(
            sql.Identifier(db_name)))
    assert ledger_rows(db) == 1


def test_run_id_cannot_be_supplied_by_hand(db):
    pgtap.throws_ok(
        db,
        "INSERT INTO dot_iu_command_run (run_id, command_name, run_mode, run_status, mutating,"
        " actor, params_digest) VALUES (1, 'dot_iu_healthcheck', 'plan', 'planned', true, 'a',"
        f" '{DIGEST}')",
        "428C9",
    )
