"""0016_locks_and_chains (docs/runtime.md, docs/seals.md): the logger holds the gates it reads, a
lease answers only to the login that acquired it, the seal chains take no maintenance, and
verify sees a chain cut short or a gate run without its transition.

Concurrency is real: two sessions, one holding a transaction open while the other tries to close
the gate with a short lock_timeout (55P03 proves it waited on the holder's lock).
"""

from __future__ import annotations

import os
import time

import pgtap
import psycopg
import pytest
from gate_helpers import (
    GATE,
    MAINTENANCE,
    RUNTIME_GATE,
    gate_close,
    gate_open,
    watchdog,
    write_run,
)
from psycopg import sql

from substrate.review.verify import seals

DIGEST = "0123456789abcdef0123456789abcdef"
COMMAND = "dot_iu_compose_collection"  # needs iu_core.composer_enabled besides the runtime gate
LOG_APPLIED = ("SELECT public.fn_dot_iu_command_log(%s, 'apply', 'applied', 'svc@example', %s)")
CLOSE = "SELECT public.fn_iu_gate_close(%s, 'ops@example', 'emergency stop')"
_made = iter(range(1, 1_000_000))


@pytest.fixture
def logins(pg, db_name):
    """logins(*roles) -> a connection (autocommit) as a fresh LOGIN role in ``roles``."""
    made, conns = [], []

    def make(*roles: str) -> psycopg.Connection:
        name = f"lc_{os.getpid()}_{next(_made)}"
        pg.admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        made.append(name)
        for role in roles:
            pg.admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role),
                                                              sql.Identifier(name)))
        conn = psycopg.connect(pg.conninfo(db_name).replace(f"user={pg.user}", f"user={name}"),
                               autocommit=True)
        conns.append(conn)
        return conn

    yield make
    for conn in conns:
        conn.close()
    for name in made:
        pg.admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def open_both(db) -> None:
    gate_open(db, gate=RUNTIME_GATE)
    gate_open(db, gate=GATE)


def applied_rows(db) -> int:
    return db.execute("SELECT count(*) FROM dot_iu_command_run WHERE command_name = %s"
                      " AND run_status = 'applied'", (COMMAND,)).fetchone()[0]


# -- the logger holds the gates it reads --------------------------------------------------------

@pytest.fixture
def closer(pg, db_name):
    """A second session (the server's superuser, autocommit) whose lock waits end after 300 ms
    with 55P03, which proves a statement waited."""
    conn = pg.connect(db_name)
    conn.execute("SET lock_timeout = '300ms'")
    yield conn
    conn.close()


def waits_on_the_hold(conn, statement: str, params: tuple = ()) -> None:
    """``statement`` waits for the gates' hold, in dot_config's close-wait trigger."""
    with pytest.raises(psycopg.errors.LockNotAvailable) as waited:
        conn.execute(statement, params)
    assert "fn_dot_iu_gate_close_wait" in waited.value.diag.context


def test_a_close_waits_for_a_direct_logger_call_holding_the_gate(db, logins, closer):
    open_both(db)
    runtime = logins("dot_iu_runtime")
    with runtime.transaction():
        runtime.execute(LOG_APPLIED, (COMMAND, DIGEST))
        waits_on_the_hold(closer, CLOSE, (GATE,))
    closer.execute(CLOSE, (GATE,))  # the applier committed: the close goes through now
    assert applied_rows(db) == 1
    ordered = db.execute("SELECT command_name FROM dot_iu_command_run WHERE run_id > 2"
                         " ORDER BY run_id").fetchall()
    assert [row[0] for row in ordered] == [COMMAND, "dot_iu_gate_close"]


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_snapshot_older_than_a_close_cannot_record_an_applied_row(db, logins, isolation):
    open_both(db)
    runtime = logins("dot_iu_runtime")
    runtime.execute(f"BEGIN ISOLATION LEVEL {isolation}")
    assert runtime.execute("SELECT public.fn_iu_composer_enabled()").fetchone()[0] is True
    db.execute(CLOSE, (GATE,))  # committed after the runtime's snapshot was taken
    with pytest.raises(psycopg.errors.SerializationFailure):
        runtime.execute(LOG_APPLIED, (COMMAND, DIGEST))
    runtime.execute("ROLLBACK")
    assert applied_rows(db) == 0


def test_a_close_waits_for_an_apply_begun_by_the_runtime(db, logins, closer):
    """apply_begin takes the gates' hold for the whole apply (v3: the shared advisory lock every
    close takes exclusively; v2 locked the gates' rows FOR SHARE)."""
    open_both(db)
    runtime = logins("dot_iu_runtime")
    epoch = runtime.execute("SELECT public.fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                            " 'host:1:a', 60)").fetchone()[0]
    with runtime.transaction():
        runtime.execute("SELECT public.fn_dot_iu_runtime_apply_begin(%s, 'operator_runtime',"
                        " 'host:1:a', %s)", (COMMAND, epoch))
        for gate in (GATE, RUNTIME_GATE):
            with pytest.raises(psycopg.errors.LockNotAvailable):
                closer.execute(CLOSE, (gate,))


@pytest.mark.parametrize("close", [
    "UPDATE dot_config SET value = 'false' WHERE key = %s",
    "UPDATE dot_config SET value = 'off' WHERE key = %s",
    "DELETE FROM dot_config WHERE key = %s",
])
def test_a_direct_close_by_the_owner_waits_for_an_applied_row_in_flight(
        db, logins, closer, close):
    """The hold is taken by dot_config's own trigger, so no way of closing a gate skips it."""
    open_both(db)
    runtime = logins("dot_iu_runtime")
    with runtime.transaction():
        runtime.execute(LOG_APPLIED, (COMMAND, DIGEST))
        waits_on_the_hold(closer, close, (GATE,))
    closer.execute(close, (GATE,))
    assert applied_rows(db) == 1


def test_a_direct_truncate_of_dot_config_waits_for_an_applied_row_in_flight(db, logins, closer):
    open_both(db)
    runtime = logins("dot_iu_runtime")
    with runtime.transaction():
        runtime.execute(LOG_APPLIED, (COMMAND, DIGEST))
        waits_on_the_hold(closer, "TRUNCATE dot_config")


@pytest.mark.parametrize("status", [("plan", "planned"), ("apply", "refused"),
                                    ("verify", "verified")])
def test_only_an_applied_apply_row_holds_the_gates(db, logins, closer, status):
    open_both(db)
    runtime = logins("dot_iu_runtime")
    with runtime.transaction():
        runtime.execute("SELECT public.fn_dot_iu_command_log(%s, %s, %s, 'svc@example', %s)",
                        (COMMAND, *status, DIGEST))
        closer.execute(CLOSE, (GATE,))  # no wait: nothing applied is in flight


def test_writes_that_close_nothing_do_not_wait_for_an_applied_row(db, logins, closer):
    """Another key, a gate that is already closed, and an open gate keeping 'true' take no hold."""
    open_both(db)
    db.execute("INSERT INTO dot_config (key, value) VALUES ('iu_core.other_setting', '1')"
               " ON CONFLICT (key) DO NOTHING")
    runtime = logins("dot_iu_runtime")
    with runtime.transaction():
        runtime.execute(LOG_APPLIED, (COMMAND, DIGEST))
        closer.execute("UPDATE dot_config SET value = '2' WHERE key = 'iu_core.other_setting'")
        closer.execute("UPDATE dot_config SET value = 'false'"
                       " WHERE key = 'iu_core.delivery_enabled'")
        closer.execute("UPDATE dot_config SET updated_at = now() WHERE key = %s", (GATE,))


def test_the_watchdog_leaves_expired_gates_while_an_applied_row_is_in_flight(
        pg, db, db_name, logins):
    """It tries for the hold and, failing, says so and closes nothing; the next run closes."""
    gate_open(db, gate=RUNTIME_GATE)
    gate_open(db, gate=GATE, ttl=1)
    runtime = logins("dot_iu_runtime")
    notices = []
    db.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    with runtime.transaction():
        runtime.execute(LOG_APPLIED, (COMMAND, DIGEST))  # inside the one-second window
        time.sleep(1.2)  # the window ends while the applying transaction is still open
        db.execute("SET statement_timeout = '3s'")
        started = time.monotonic()
        assert watchdog(db) == []
        assert time.monotonic() - started < 1.0
    assert any("applied row is being recorded" in note for note in notices), notices
    assert [entry["gate"] for entry in watchdog(db)] == [GATE]


def test_an_applied_row_after_a_window_ends_is_refused_on_the_fresh_readings(db, logins):
    """The cached snapshot stops being valid when a window ends: the logger reads afresh and
    names every gate that no longer reads open."""
    gate_open(db, gate=RUNTIME_GATE, ttl=1)
    gate_open(db, gate=GATE, ttl=1)
    runtime = logins("dot_iu_runtime")
    time.sleep(1.2)
    before = db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0]
    pgtap.throws_ok(runtime, LOG_APPLIED, "55000",
                    f"shut: {RUNTIME_GATE}, {GATE}", params=(COMMAND, DIGEST))
    assert db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0] == before
    run_id = runtime.execute("SELECT public.fn_dot_iu_command_log(%s, 'plan', 'planned', 'svc',"
                             " %s)", (COMMAND, DIGEST)).fetchone()[0]
    snapshot = db.execute("SELECT gate_snapshot FROM dot_iu_command_run WHERE run_id = %s",
                          (run_id,)).fetchone()[0]
    assert snapshot[GATE] == snapshot[RUNTIME_GATE] == "false"


def test_a_command_needing_two_gates_is_applied_only_with_both_open(db, logins):
    """The gate rule for any number of required gates, not only the one gate a target maps to."""
    db.execute("UPDATE dot_iu_command_catalog SET required_gates = %s WHERE command_name = %s",
               (["iu_core.delivery_enabled", GATE], COMMAND))
    runtime = logins("dot_iu_runtime")
    open_both(db)
    pgtap.throws_ok(runtime, LOG_APPLIED, "55000", "shut: iu_core.delivery_enabled",
                    params=(COMMAND, DIGEST))
    gate_open(db, gate="iu_core.delivery_enabled")
    pgtap.lives_ok(runtime, LOG_APPLIED, params=(COMMAND, DIGEST))
    assert applied_rows(db) == 1


# -- the logger's rules, tightened ---------------------------------------------------------------

@pytest.mark.parametrize("evidence", [
    {"outer": {"password": "hunter2"}},
    {"steps": [{"ok": True}, {"auth": {"Api_Key": "k"}}]},
    {"target": "postgresql://app:hunter2@db.internal/iu"},
    {"urls": ["https://user:pw@example.com/x"]},
])
def test_evidence_naming_a_secret_at_any_depth_is_refused_22023(db, logins, evidence):
    runtime = logins("dot_iu_runtime")
    before = db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0]
    pgtap.throws_ok(runtime, "SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'plan',"
                    " 'planned', 'svc@example', %s, %s)", "22023", "names a secret",
                    params=(DIGEST, psycopg.types.json.Jsonb(evidence)))
    assert db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0] == before


def test_evidence_without_secrets_still_passes(db, logins):
    runtime = logins("dot_iu_runtime")
    evidence = {"url": "https://example.com/a@b", "nested": {"rows": 3, "ids": [1, 2]}}
    pgtap.lives_ok(runtime, "SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'plan',"
                   " 'planned', 'svc@example', %s, %s)",
                   params=(DIGEST, psycopg.types.json.Jsonb(evidence)))


@pytest.mark.parametrize(("actor", "sqlstate"), [
    (None, "23502"), ("", "23514"), ("   ", "23514"), ("\u00a0ops", "22023"), ("x" * 201, "22023"),
    ("ops\u200b@example", "22023"), ("Zoë Ünal", None), ("ops@example 7", None),
])
def test_the_actor_fast_path_decides_as_the_full_rule_does(logins, actor, sqlstate):
    """Printable ASCII with a letter or digit passes one cheap test; everything else meets the
    full rule, and NULL or blank the table's constraints, with their SQLSTATEs as before v7."""
    runtime = logins("dot_iu_runtime")
    call = ("SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', %s,"
            " %s)")
    if sqlstate is None:
        pgtap.lives_ok(runtime, call, params=(actor, DIGEST))
    else:
        pgtap.throws_ok(runtime, call, sqlstate, params=(actor, DIGEST))


@pytest.mark.parametrize("command", ["dot_iu_gate_open", "dot_iu_gate_close",
                                     "dot_iu_gate_watchdog", "dot_iu_runtime_lease_break"])
def test_only_refused_rows_of_the_package_s_own_commands_come_through_the_logger(
        db, logins, command):
    runtime = logins("dot_iu_runtime")
    for status in ("failed", "applied", "verified"):
        mode = "verify" if status == "verified" else "apply"
        pgtap.throws_ok(runtime, "SELECT public.fn_dot_iu_command_log(%s, %s, %s, 'x', %s)",
                        "42501", params=(command, mode, status, DIGEST))
    pgtap.lives_ok(runtime, "SELECT public.fn_dot_iu_command_log(%s, 'apply', 'refused', 'x',"
                   " %s)", params=(command, DIGEST))


# -- a lease answers to the login that acquired it ---------------------------------------------

def test_another_login_cannot_renew_release_or_apply_under_a_lease(db, logins):
    open_both(db)
    holder, other = logins("dot_iu_runtime"), logins("dot_iu_runtime")
    epoch = holder.execute("SELECT public.fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                           " 'host:1:a', 60)").fetchone()[0]
    lease = "SELECT * FROM dot_iu_runtime_lease"
    before = db.execute(lease).fetchall()
    assert other.execute("SELECT public.fn_dot_iu_runtime_lease_renew('operator_runtime',"
                         " 'host:1:a', %s, 600)", (epoch,)).fetchone()[0] is False
    assert other.execute("SELECT public.fn_dot_iu_runtime_lease_release('operator_runtime',"
                         " 'host:1:a', %s)", (epoch,)).fetchone()[0] is False
    pgtap.throws_ok(other, "SELECT public.fn_dot_iu_runtime_apply_begin(%s, 'operator_runtime',"
                    " 'host:1:a', %s)", "55000", "for this login", params=(COMMAND, epoch))
    # Naming the live holder from another login does not extend the lease either.
    assert other.execute("SELECT public.fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                         " 'host:1:a', 3600)").fetchone()[0] is None
    assert db.execute(lease).fetchall() == before
    # Its own login still can.
    assert holder.execute("SELECT public.fn_dot_iu_runtime_lease_renew('operator_runtime',"
                          " 'host:1:a', %s, 600)", (epoch,)).fetchone()[0] is True
    assert holder.execute("SELECT public.fn_dot_iu_runtime_lease_release('operator_runtime',"
                          " 'host:1:a', %s)", (epoch,)).fetchone()[0] is True


# -- the seal chains take no maintenance ---------------------------------------------------------

def fold(conn) -> None:
    for _ in range(2):
        conn.execute("SELECT fn_dot_iu_command_run_tally_fold()")


def history(conn) -> None:
    for _ in range(4):
        write_run(conn, "dot_iu_collection_status", "plan", "planned")
    gate_open(conn)
    gate_close(conn)
    fold(conn)


@pytest.mark.parametrize("as_owner", [False, True])
def test_no_link_is_removed_even_under_maintenance(db, as_owner):
    history(db)
    for statement in ("DELETE FROM dot_iu_ledger_seal WHERE seal_id = (SELECT max(seal_id)"
                      " FROM dot_iu_ledger_seal)", "TRUNCATE dot_iu_ledger_seal",
                      "UPDATE dot_iu_ledger_seal SET reason = 'x'"):
        with db.transaction(force_rollback=True):
            if as_owner:
                db.execute("SET LOCAL ROLE dot_iu_owner")
            db.execute(MAINTENANCE)
            pgtap.throws_ok(db, statement, "55000", "holds the seal chains")
    assert seals.section(db)["ok"]


def cut_the_tail(db) -> None:
    """What it now takes to remove the newest links: the seal table's triggers disabled (DDL
    of the owner or a superuser; replica mode does not silence them)."""
    trigger = "tg_dot_iu_ledger_seal_append_only"
    with db.transaction():
        db.execute(f"ALTER TABLE dot_iu_ledger_seal DISABLE TRIGGER {trigger}")
        db.execute("DELETE FROM dot_iu_ledger_seal WHERE ledger = 'run'")
        db.execute(f"ALTER TABLE dot_iu_ledger_seal ENABLE ALWAYS TRIGGER {trigger}")


def test_verify_finds_rows_under_the_watermark_that_no_link_covers(db):
    history(db)
    recorded = db.execute("SELECT seal_sha256 FROM dot_iu_ledger_seal WHERE ledger = 'run'"
                          " ORDER BY seal_id DESC LIMIT 1").fetchone()[0]
    cut_the_tail(db)
    report = seals.section(db, expected_heads=(recorded,))
    assert ("run ledger: 6 row(s) (ids 1-6) lie under the tally's watermark (6) but past the last"
            " link of the run chain (0): links were removed from the end of the chain"
            in report["findings"]), report["findings"]
    assert any(finding.startswith("recorded chain head") for finding in report["findings"])


def test_verify_finds_an_applied_gate_run_without_its_transition(db):
    history(db)
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("DELETE FROM iu_gate_transition WHERE action = 'close'")
    findings = seals.section(db)["findings"]
    assert ("run ledger: applied gate run(s) 6 have no transition: transitions were removed (or"
            " the run rows were written behind the gate protocol)" in findings), findings


def test_the_gate_run_check_accepts_every_row_the_protocol_writes(db):
    history(db)
    gate_close(db)  # a close of a closed gate: still a transition
    db.execute("SELECT fn_iu_gate_open(%s, 'CHG-1', 'ops@example', 'short', 1)", (GATE,))
    db.execute("SELECT pg_sleep(1.1)")
    assert db.execute("SELECT fn_iu_gate_watchdog('cron@example')").fetchone()[0] != []
    report = seals.section(db)
    assert report["ok"], report["findings"]


def test_a_holder_whose_lease_expires_during_the_apply_cannot_commit_it(db, logins):
    open_both(db)
    runtime = logins("dot_iu_runtime")
    epoch = runtime.execute("SELECT public.fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                            " 'host:1:a', 1)").fetchone()[0]
    evidence = psycopg.types.json.Jsonb({"lease": "operator_runtime", "epoch": epoch})
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no longer held"):
        with runtime.transaction():
            runtime.execute("SELECT public.fn_dot_iu_runtime_apply_begin(%s, 'operator_runtime',"
                            " 'host:1:a', %s)", (COMMAND, epoch))
            runtime.execute("SELECT pg_sleep(1.1)")  # the command runs past the lease's end
            runtime.execute("SELECT public.fn_dot_iu_command_log(%s, 'apply', 'applied',"
                            " 'svc@example', %s, %s)", (COMMAND, DIGEST, evidence))
    assert applied_rows(db) == 0
    # Within its lease the same apply commits.
    epoch = runtime.execute("SELECT public.fn_dot_iu_runtime_lease_acquire('operator_runtime',"
                            " 'host:1:a', 60)").fetchone()[0]
    evidence = psycopg.types.json.Jsonb({"lease": "operator_runtime", "epoch": epoch})
    with runtime.transaction():
        runtime.execute("SELECT public.fn_dot_iu_runtime_apply_begin(%s, 'operator_runtime',"
                        " 'host:1:a', %s)", (COMMAND, epoch))
        runtime.execute("SELECT public.fn_dot_iu_command_log(%s, 'apply', 'applied',"
                        " 'svc@example', %s, %s)", (COMMAND, DIGEST, evidence))
    assert applied_rows(db) == 1


def test_the_runtime_records_plan_and_verify_rows_of_the_read_gate_command(logins):
    """dot_iu_gate_verify_closed is a read command of the catalog, not a writer of the gate
    protocol: its plan, verify and failed rows come through the logger like any other's."""
    runtime = logins("dot_iu_runtime")
    for mode, status in (("plan", "planned"), ("verify", "verified"), ("verify", "failed")):
        pgtap.lives_ok(runtime, "SELECT public.fn_dot_iu_command_log('dot_iu_gate_verify_closed',"
                       " %s, %s, 'svc@example', %s)", params=(mode, status, DIGEST))


def test_the_refusal_recorder_masks_a_password_in_a_url_of_its_message(db, logins):
    operator = logins("dot_iu_gate_operator")
    run_id = operator.execute(
        "SELECT public.fn_iu_gate_record_refusal('close', 'failed', %s, NULL, 'ops@example',"
        " 'r', NULL, '08006', 'could not reach postgresql://app:hunter2@db.internal:5432/iu')",
        (GATE,)).fetchone()[0]
    evidence = db.execute("SELECT evidence FROM dot_iu_command_run WHERE run_id = %s",
                          (run_id,)).fetchone()[0]
    assert evidence["message"] == "could not reach postgresql://app:***@db.internal:5432/iu"
    assert "hunter2" not in db.execute("SELECT string_agg(evidence::text, '') FROM"
                                       " dot_iu_command_run").fetchone()[0]


def test_the_seal_guard_fires_always(db):
    enabled = dict(db.execute("SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid ="
                              " 'dot_iu_ledger_seal'::regclass").fetchall())
    assert enabled == {"tg_dot_iu_ledger_seal_append_only": "A",
                       "tg_dot_iu_ledger_seal_no_truncate": "A"}


def test_a_fold_moves_at_most_16384_ids_and_drains_a_backlog_over_the_next_folds(db):
    db.execute("INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating,"
               " actor, params_digest) SELECT 'dot_iu_collection_status', 'plan', 'planned',"
               " false, 'bulk', %s FROM generate_series(1, 20000)", (DIGEST,))
    watermark = "SELECT folded_through, candidate_through FROM dot_iu_command_run_tally_watermark"
    db.execute("SELECT fn_dot_iu_command_run_tally_fold()")  # records the candidate
    assert db.execute(watermark).fetchone() == (0, 20000)
    assert db.execute("SELECT fn_dot_iu_command_run_tally_fold()").fetchone()[0] == 16384
    assert db.execute(watermark).fetchone() == (16384, 20000)
    assert db.execute("SELECT fn_dot_iu_command_run_tally_fold()").fetchone()[0] == 3616
    assert db.execute(watermark).fetchone()[0] == 20000
    assert db.execute("SELECT first_id, last_id, row_count FROM dot_iu_ledger_seal"
                      " WHERE ledger = 'run' ORDER BY seal_id").fetchall() == [
        (1, 16384, 16384), (16385, 20000, 3616)]
    report = seals.section(db)
    assert report["ok"], report["findings"]
    health = db.execute("SELECT total_runs FROM v_dot_iu_command_run_health").fetchone()[0]
    assert health == 20000
