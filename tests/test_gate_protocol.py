"""The bounded gate protocol in behaviour (docs/gates.md): refusals, windows, audit, watchdog.

Every refusal names its SQLSTATE and leaves no trace: the gate values (updated_at included), the
transition ledger and the run ledger are exactly as before the call.
"""

from __future__ import annotations

import re
import time

import pgtap
import psycopg
import pytest
from conftest import PROJECT_ROOT
from gate_helpers import (
    GATE,
    GOVERNABLE,
    NEVER_FLIP,
    RUNTIME_GATE,
    close_call,
    config,
    counts,
    gate_close,
    gate_open,
    open_call,
    runs,
    set_value,
    transitions,
    verify,
    watchdog,
    watchdog_call,
)

NEVER_FLIP_MESSAGE = "supply a real review_decision_id instead of bypassing review"
MD5 = re.compile(r"^[0-9a-f]{32}$")

# (case id, (sql, params), SQLSTATE, message fragment): SPEC 3.4's fail-closed table, row by row,
# each row with the variants that reach it. Where several arguments are wrong, the first rule
# of the table decides.
REFUSALS = [
    ("open-never-flip-allow-no-review", open_call(gate=NEVER_FLIP[0]), "42501", NEVER_FLIP_MESSAGE),
    ("open-never-flip-vector-sync", open_call(gate=NEVER_FLIP[1]), "42501", NEVER_FLIP_MESSAGE),
    ("open-never-flip-before-any-other-rule",
     open_call(gate=NEVER_FLIP[0], approval=None, actor=None, ttl=None), "42501",
     NEVER_FLIP_MESSAGE),
    ("open-unknown-key", open_call(gate="iu_core.unknown_enabled"), "22023", "unknown means deny"),
    ("open-null-key", open_call(gate=None), "22023", "unknown means deny"),
    ("open-key-in-another-case", open_call(gate=GATE.upper()), "22023", "unknown means deny"),
    ("open-key-with-whitespace", open_call(gate=GATE + " "), "22023", "unknown means deny"),
    ("open-unknown-before-approval", open_call(gate="x", approval=None), "22023",
     "unknown means deny"),
    ("open-null-approval", open_call(approval=None), "23514", "without an approval"),
    ("open-empty-approval", open_call(approval=""), "23514", "without an approval"),
    ("open-blank-approval", open_call(approval=" \t "), "23514", "without an approval"),
    ("open-approval-before-ttl", open_call(approval=None, ttl=0), "23514", "without an approval"),
    ("open-null-ttl", open_call(ttl=None), "22023", "ttl_seconds must be in (0, 3600]"),
    ("open-zero-ttl", open_call(ttl=0), "22023", "ttl_seconds must be in (0, 3600]"),
    ("open-negative-ttl", open_call(ttl=-60), "22023", "ttl_seconds must be in (0, 3600]"),
    ("open-ttl-over-an-hour", open_call(ttl=3601), "22023", "ttl_seconds must be in (0, 3600]"),
    ("open-ttl-before-actor", open_call(ttl=0, actor=""), "22023", "ttl_seconds"),
    ("open-null-actor", open_call(actor=None), "22023", "actor must name who opens"),
    ("open-blank-actor", open_call(actor="  "), "22023", "actor must name who opens"),
    ("close-never-flip-allow-no-review", close_call(gate=NEVER_FLIP[0]), "22023",
     "never written"),
    ("close-never-flip-vector-sync", close_call(gate=NEVER_FLIP[1]), "22023", "never written"),
    ("close-unknown-key", close_call(gate="iu_core.unknown_enabled"), "22023",
     "unknown means deny"),
    ("close-null-key", close_call(gate=None), "22023", "unknown means deny"),
    ("close-null-actor", close_call(actor=None), "22023", "actor must name who closes"),
    ("close-blank-actor", close_call(actor=""), "22023", "actor must name who closes"),
    ("watchdog-null-actor", watchdog_call(actor=None), "22023", "actor must name"),
    ("watchdog-blank-actor", watchdog_call(actor=" "), "22023", "actor must name"),
]


def refuses(conn, call, sqlstate, fragment=None):
    sql, params = call
    return pgtap.throws_ok(conn, sql, sqlstate, fragment, params=params)


def assert_no_trace(conn, before_config, before_counts=(0, 0)):
    assert config(conn) == before_config, "a refused call changed dot_config"
    assert counts(conn) == before_counts, "a refused call wrote a transition or a ledger row"


# --- the refusal matrix -----------------------------------------------------------------------

@pytest.mark.parametrize("call,sqlstate,fragment",
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_gate_call_refusal_raises_its_sqlstate_and_leaves_no_trace(db, call, sqlstate, fragment):
    before = config(db)
    sql, params = call
    pgtap.throws_ok(db, sql, sqlstate, fragment, params=params)
    assert_no_trace(db, before)


@pytest.mark.parametrize("call,sqlstate,fragment",
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_gate_call_refusal_rolls_back_with_the_callers_transaction(pg, db_name, call, sqlstate,
                                                                  fragment):
    """Called plainly (no savepoint) inside a transaction: the whole transaction is lost."""
    with pg.connect(db_name, autocommit=False) as conn:
        before = config(conn)
        sql, params = call
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(sql, params)
        assert caught.value.sqlstate == sqlstate
        conn.rollback()
        assert_no_trace(conn, before)


def test_gate_open_refuses_an_open_gate_with_55000_and_leaves_it_as_it_was(db):
    gate_open(db)
    before, before_counts = config(db), counts(db)
    refuses(db, open_call(approval="CHG-2"), "55000", "already open")
    assert_no_trace(db, before, before_counts)


def test_gate_open_opens_a_window_over_a_gate_set_true_by_hand(db):
    """A value set to 'true' behind the protocol reads closed (no window), so it is not
    'already open': an approved open gives it a real window (docs/gates.md)."""
    set_value(db, GATE, "true")
    assert db.execute("SELECT fn_iu_composer_enabled()").fetchone()[0] is False
    opened = gate_open(db)
    assert opened["prev_value"] == "true"
    assert db.execute("SELECT fn_iu_composer_enabled()").fetchone()[0] is True
    refuses(db, open_call(), "55000", "already open")


def test_gate_open_refuses_an_already_open_gate_only_after_the_argument_rules(db):
    gate_open(db)
    before, before_counts = config(db), counts(db)
    refuses(db, open_call(actor=""), "22023", "actor")
    refuses(db, open_call(approval=None), "23514")
    assert_no_trace(db, before, before_counts)


@pytest.mark.parametrize("call", [open_call(), close_call()], ids=["open", "close"])
def test_gate_call_refuses_a_governable_key_missing_from_dot_config(db, call):
    db.execute("DELETE FROM dot_config WHERE key = %s", (GATE,))
    before = config(db)
    refuses(db, call, "22023", "has no row in public.dot_config")
    assert_no_trace(db, before)


def test_gate_close_never_writes_a_never_flip_key_even_when_it_reads_true(db):
    set_value(db, NEVER_FLIP[0], "true")
    before = config(db)
    refuses(db, close_call(gate=NEVER_FLIP[0]), "22023", "never written")
    assert_no_trace(db, before)


@pytest.mark.parametrize("gate", GOVERNABLE)
def test_gate_open_accepts_each_of_the_seven_governable_gates(db, gate):
    assert gate_open(db, gate)["new_value"] == "true"
    assert transitions(db) == [(gate, "open", "false", "true")]


@pytest.mark.parametrize("ttl", [1, 3600])
def test_gate_open_accepts_the_ttl_bounds(db, ttl):
    assert gate_open(db, ttl=ttl)["window"]["ttl_seconds"] == ttl


# --- the happy path ---------------------------------------------------------------------------

def test_gate_open_sets_true_and_records_a_window_of_now_plus_ttl(pg, db_name):
    with pg.connect(db_name, autocommit=False) as conn:
        result = gate_open(conn, ttl=900)
        row = conn.execute(
            "SELECT gate_key, action, prev_value, new_value, approval_id, ttl_seconds, actor,"
            " reason, expires_at = now() + interval '900 seconds', run_id"
            " FROM iu_gate_transition").fetchall()
        conn.commit()
    assert row == [(GATE, "open", "false", "true", "CHG-1042", 900, "ops@example", "deploy 7.3",
                    True, result["run_id"])]
    with pg.connect(db_name) as conn:
        pgtap.results_eq(conn, "SELECT value FROM dot_config WHERE key = %s", [("true",)],
                         params=(GATE,))
        pgtap.results_eq(conn, "SELECT fn_iu_composer_enabled()", [(True,)])


def test_gate_open_returns_gate_values_window_and_ledger_ids(db):
    result = gate_open(db, ttl=120)
    assert set(result) == {"gate", "action", "prev_value", "new_value", "changed", "window",
                           "run_id", "transition_id"}
    assert (result["gate"], result["action"], result["prev_value"], result["new_value"],
            result["changed"]) == (GATE, "open", "false", "true", True)
    assert set(result["window"]) == {"approval_id", "ttl_seconds", "opened_at", "expires_at"}
    assert result["window"]["approval_id"] == "CHG-1042"
    pgtap.results_eq(
        db, "SELECT transition_id, run_id, expires_at = %s::timestamptz,"
        " expires_at - %s::timestamptz FROM iu_gate_transition",
        [(result["transition_id"], result["run_id"], True, _seconds(120))],
        params=(result["window"]["expires_at"], result["window"]["opened_at"]),
    )


def _seconds(n):
    import datetime

    return datetime.timedelta(seconds=n)


def test_gate_open_audits_one_applied_ledger_row_without_approval_or_reason(db):
    result = gate_open(db)
    assert runs(db) == [("dot_iu_gate_open", "apply", "applied", "ops@example")]
    run_id, mutating, digest, evidence, snapshot = db.execute(
        "SELECT run_id, mutating, params_digest, evidence, gate_snapshot FROM dot_iu_command_run"
    ).fetchone()
    assert run_id == result["run_id"] and mutating is True
    assert MD5.match(digest)
    text = str(evidence)
    assert "CHG-1042" not in text and "deploy 7.3" not in text
    assert evidence["gate"] == GATE and evidence["new_value"] == "true"
    assert snapshot[GATE] == "false", "the open's own row records the gate as it stood before"
    after = db.execute("SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', "
                       "'ops', repeat('a', 32))").fetchone()[0]
    assert db.execute("SELECT gate_snapshot ->> %s FROM dot_iu_command_run WHERE run_id = %s",
                      (GATE, after)).fetchone()[0] == "true"


def test_gate_close_sets_false_and_audits_twice(db):
    opened = gate_open(db)
    result = gate_close(db)
    assert (result["prev_value"], result["new_value"], result["changed"]) == ("true", "false",
                                                                              True)
    assert result["window"]["approval_id"] == "CHG-1042" and result["window"]["live"] is True
    assert transitions(db) == [(GATE, "open", "false", "true"), (GATE, "close", "true", "false")]
    assert runs(db)[-1] == ("dot_iu_gate_close", "apply", "applied", "ops@example")
    pgtap.results_eq(db, "SELECT value FROM dot_config WHERE key = %s", [("false",)],
                     params=(GATE,))
    pgtap.results_eq(
        db, "SELECT t.run_id = r.run_id FROM iu_gate_transition t JOIN dot_iu_command_run r"
        " USING (run_id) WHERE t.transition_id = %s", [(True,)], params=(result["transition_id"],))
    assert result["run_id"] > opened["run_id"]


def test_gate_close_of_a_closed_gate_is_a_no_op_that_still_audits(db):
    before = config(db)
    result = gate_close(db)
    assert (result["prev_value"], result["new_value"], result["changed"], result["window"]) == (
        "false", "false", False, None)
    assert config(db) == before, "a no-op close must not touch the row (updated_at included)"
    assert transitions(db) == [(GATE, "close", "false", "false")]
    assert runs(db) == [("dot_iu_gate_close", "apply", "applied", "ops@example")]


def test_gate_close_forces_any_other_value_to_false(db):
    set_value(db, GATE, "yes")
    assert gate_close(db)["prev_value"] == "yes"
    assert transitions(db) == [(GATE, "close", "yes", "false")]


def test_gate_can_be_reopened_after_a_close(db):
    gate_open(db)
    gate_close(db)
    gate_open(db, approval="CHG-2")
    assert [t[1] for t in transitions(db)] == ["open", "close", "open"]


def test_verify_closed_before_during_and_after_a_window(db):
    before = verify(db)
    assert (before["all_safe"], before["all_governed_closed"], before["never_flip_intact"]) == (
        True, True, True)
    gate_open(db)
    during = verify(db)
    assert (during["all_safe"], during["all_governed_closed"], during["never_flip_intact"]) == (
        False, False, True)
    entry = next(g for g in during["gates"] if g["gate"] == GATE)
    assert (entry["open"], entry["safe"], entry["orphaned"]) == (True, False, False)
    assert entry["window"]["live"] is True and entry["window"]["approval_id"] == "CHG-1042"
    gate_close(db)
    after = verify(db)
    assert (after["all_safe"], after["all_governed_closed"], after["never_flip_intact"]) == (
        True, True, True)


def test_verify_closed_reports_every_gate_governable_first(db):
    report = verify(db)
    assert set(report) == {"all_safe", "all_governed_closed", "never_flip_intact", "checked_at",
                           "gates"}
    assert [(g["gate"], g["class"]) for g in report["gates"]] == (
        [(gate, "governable") for gate in sorted(GOVERNABLE)]
        + [(gate, "never-flip") for gate in sorted(NEVER_FLIP)])
    assert set(report["gates"][0]) == {"gate", "class", "present", "value", "open", "reads_open",
                                       "safe",
                                       "window", "orphaned"}
    assert all(g["present"] and g["value"] == "false" and g["safe"] for g in report["gates"])


def test_verify_closed_flags_a_flipped_never_flip_gate(db):
    set_value(db, NEVER_FLIP[1], "true")
    report = verify(db)
    assert (report["all_safe"], report["all_governed_closed"], report["never_flip_intact"]) == (
        False, True, False)


def test_verify_closed_reports_one_gate_and_refuses_an_unknown_one(db):
    report = verify(db, GATE)
    assert [g["gate"] for g in report["gates"]] == [GATE]
    assert verify(db, NEVER_FLIP[0])["never_flip_intact"] is True
    pgtap.throws_ok(db, "SELECT fn_iu_gate_verify_closed('iu_core.nope')", "22023",
                    "unknown means deny")


def test_verify_closed_writes_nothing_and_runs_in_a_read_only_transaction(pg, db_name):
    with pg.connect(db_name) as conn:
        gate_open(conn, ttl=1)
        set_value(conn, "queue.job_substrate.enabled", "true")
        time.sleep(1.1)
        before = (config(conn), counts(conn))
    with pg.connect(db_name, autocommit=False) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        report = verify(conn)
        conn.rollback()
        assert (config(conn), counts(conn)) == before
    orphans = sorted(g["gate"] for g in report["gates"] if g["orphaned"])
    assert orphans == [GATE, "queue.job_substrate.enabled"]


# --- windows end: the watchdog and the runtime reader -----------------------------------------

def test_watchdog_closes_an_expired_window(db):
    opened = gate_open(db, ttl=1)
    time.sleep(1.1)
    closed = watchdog(db)
    assert [(c["gate"], c["cause"], c["expires_at"]) for c in closed] == [
        (GATE, "expired", opened["window"]["expires_at"])]
    assert transitions(db)[-1] == (GATE, "watchdog_close", "true", "false")
    assert runs(db)[-1] == ("dot_iu_gate_watchdog", "apply", "applied", "cron@host")
    pgtap.results_eq(db, "SELECT value FROM dot_config WHERE key = %s", [("false",)],
                     params=(GATE,))
    pgtap.results_eq(
        db, "SELECT reason LIKE 'watchdog: window expired at %%', run_id FROM iu_gate_transition"
        " WHERE action = 'watchdog_close'", [(True, closed[0]["run_id"])])


def test_watchdog_closes_an_orphaned_open(db):
    set_value(db, "queue.dlq.replay_enabled", "true")  # true with no open window on record
    closed = watchdog(db)
    assert [(c["gate"], c["cause"], c["expires_at"]) for c in closed] == [
        ("queue.dlq.replay_enabled", "orphaned", None)]
    assert transitions(db) == [("queue.dlq.replay_enabled", "watchdog_close", "true", "false")]
    assert runs(db) == [("dot_iu_gate_watchdog", "apply", "applied", "cron@host")]


def test_watchdog_closes_an_open_set_by_hand_after_a_close(db):
    gate_open(db)
    gate_close(db)
    set_value(db, GATE, "true")
    assert [(c["gate"], c["cause"]) for c in watchdog(db)] == [(GATE, "orphaned")]


def test_watchdog_leaves_a_live_window_alone_and_writes_nothing(db):
    gate_open(db, ttl=600)
    before, before_counts = config(db), counts(db)
    assert watchdog(db) == []
    assert_no_trace(db, before, before_counts)


def test_watchdog_with_nothing_open_returns_an_empty_list_and_writes_nothing(db):
    before = config(db)
    assert watchdog(db) == []
    assert_no_trace(db, before)


def test_watchdog_closes_expired_and_orphaned_in_one_call_and_spares_the_live(db):
    gate_open(db, "iu_core.delivery_enabled", ttl=1)
    gate_open(db, GATE, ttl=600)
    set_value(db, "queue.job_substrate.enabled", "true")
    time.sleep(1.1)
    closed = watchdog(db)
    assert [(c["gate"], c["cause"]) for c in closed] == [
        ("iu_core.delivery_enabled", "expired"), ("queue.job_substrate.enabled", "orphaned")]
    assert len({c["run_id"] for c in closed}) == 2
    assert verify(db)["gates"][0]["gate"] == GATE and verify(db, GATE)["gates"][0]["open"]


def test_watchdog_never_writes_a_never_flip_gate(db):
    set_value(db, NEVER_FLIP[0], "true")
    assert watchdog(db) == []
    pgtap.results_eq(db, "SELECT value FROM dot_config WHERE key = %s", [("true",)],
                     params=(NEVER_FLIP[0],))


def test_expired_window_reads_as_closed_to_the_runtime_gate_before_the_watchdog_runs(db):
    gate_open(db, RUNTIME_GATE, ttl=1)
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(True,)])
    time.sleep(1.1)
    pgtap.results_eq(db, "SELECT value FROM dot_config WHERE key = %s", [("true",)],
                     params=(RUNTIME_GATE,))
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(False,)])
    assert [c["gate"] for c in watchdog(db)] == [RUNTIME_GATE]
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(False,)])


def test_runtime_gate_set_true_by_hand_reads_as_closed(db):
    set_value(db, RUNTIME_GATE, "true")
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(False,)])


def test_runtime_gate_reads_closed_after_a_close_even_if_set_true_again(db):
    gate_open(db, RUNTIME_GATE)
    gate_close(db, RUNTIME_GATE)
    set_value(db, RUNTIME_GATE, "true")
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(False,)])


def test_runtime_gate_inside_a_live_window_still_needs_the_exact_value_true(db):
    gate_open(db, RUNTIME_GATE)
    set_value(db, RUNTIME_GATE, "TRUE")
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(False,)])


def test_window_expires_by_the_wall_clock_inside_a_long_transaction(pg, db_name):
    with pg.connect(db_name, autocommit=False) as conn:
        gate_open(conn, RUNTIME_GATE, ttl=1)
        assert conn.execute("SELECT fn_dot_iu_operator_runtime_enabled()").fetchone()[0]
        conn.execute("SELECT pg_sleep(1.1)")
        assert not conn.execute("SELECT fn_dot_iu_operator_runtime_enabled()").fetchone()[0]
        conn.rollback()


# --- append-only transition ledger ------------------------------------------------------------

def test_transition_ledger_refuses_update_and_delete(db):
    gate_open(db)
    pgtap.throws_ok(db, "UPDATE iu_gate_transition SET expires_at = now() + interval '1 day'",
                    "55000", "append-only")
    pgtap.throws_ok(db, "DELETE FROM iu_gate_transition", "55000", "outside maintenance")
    pgtap.throws_ok(db, "TRUNCATE iu_gate_transition", "55000", "outside maintenance")
    pgtap.row_count_is(db, "SELECT 1 FROM iu_gate_transition", 1)


def test_transition_rows_reference_their_run_ledger_row(db):
    gate_open(db)
    pgtap.throws_ok(
        db, "INSERT INTO iu_gate_transition (gate_key, action, prev_value, new_value, actor,"
        " run_id) VALUES ('iu_core.composer_enabled', 'close', 'true', 'false', 'x', 999999)",
        "23503", "fk_iu_gate_transition_run_id")


@pytest.mark.parametrize(
    "columns,values,constraint",
    [
        ("action", "'reopen'", "ck_iu_gate_transition_action"),
        ("actor", "' '", "ck_iu_gate_transition_actor_not_blank"),
        ("approval_id", "NULL", "ck_iu_gate_transition_open_has_approval"),
        ("ttl_seconds", "7200", "ck_iu_gate_transition_ttl_seconds"),
        ("expires_at", "NULL", "ck_iu_gate_transition_open_has_window"),
    ],
)
def test_transition_constraints_hold_an_open_to_its_window_and_approval(db, columns, values,
                                                                        constraint):
    run_id = gate_open(db)["run_id"]
    row = {"gate_key": f"'{GATE}'", "action": "'open'", "prev_value": "'false'",
           "new_value": "'true'", "approval_id": "'A'", "ttl_seconds": "60",
           "expires_at": "now()", "actor": "'x'", "run_id": str(run_id)}
    row[columns] = values
    pgtap.throws_ok(db, f"INSERT INTO iu_gate_transition ({', '.join(row)})"
                        f" VALUES ({', '.join(row.values())})", "23514", constraint)


# --- the operator's transactional self-test ---------------------------------------------------

def test_operator_self_test_passes_inside_a_transaction_and_leaves_no_trace(db, psql):
    gate_open(db, "queue.job_substrate.enabled")  # an open gate the self-test must not disturb
    before, before_counts = config(db), counts(db)
    script = (PROJECT_ROOT / "tests" / "gate_selftest.sql").read_text()
    result = psql(db.info.dbname, script)
    assert "gate self-test: passed" in result.stderr, result.stderr
    assert_no_trace(db, before, before_counts)


def test_operator_self_test_fails_loudly_when_a_rule_is_broken(db, psql):
    # Sabotage: a never-flip gate that reads true must make the self-test fail, not pass.
    set_value(db, NEVER_FLIP[0], "true")
    script = (PROJECT_ROOT / "tests" / "gate_selftest.sql").read_text()
    result = psql(db.info.dbname, script, check=False)
    assert result.returncode != 0
    assert "gate self-test FAILED" in result.stderr
