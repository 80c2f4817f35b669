"""Gates end closed by themselves (docs/gates.md): readers that honour windows, a database that
refuses a flip, names that hold what they show, and a watchdog that never waits on strangers.

Every governable gate reads closed the moment its window ends, before any watchdog; a direct
write can close a gate but never open one; a never-flip gate holds 'false' whoever writes; an
approval or actor made of invisible characters is refused with the gate protocol's SQLSTATEs.
"""

from __future__ import annotations

import threading
import time

import pgtap
import psycopg
import pytest
from gate_helpers import (
    GATE,
    GOVERNABLE,
    NEVER_FLIP,
    RUNTIME_GATE,
    close_call,
    gate_close,
    gate_open,
    open_call,
    transitions,
    value,
    watchdog,
    watchdog_call,
)

# gate -> its fail-closed reader (every governable gate has one now, the queue gates included).
READERS = {
    "iu_core.composer_enabled": "fn_iu_composer_enabled",
    "iu_core.structure_ops_enabled": "fn_iu_structure_ops_enabled",
    "iu_core.delivery_enabled": "fn_iu_delivery_enabled",
    "iu_core.three_axis_auto_refresh_enabled": "fn_iu_three_axis_auto_refresh_enabled",
    "queue.job_substrate.enabled": "fn_queue_job_substrate_enabled",
    "queue.dlq.replay_enabled": "fn_queue_dlq_replay_enabled",
    "iu_core.operator_runtime_enabled": "fn_dot_iu_operator_runtime_enabled",
}
INVISIBLE = {
    "no-break space": "\u00a0",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "byte-order mark": "\ufeff",
    "right-to-left override": "\u202e",
    "tab": "\t",
    "newline": "\n",
    "escape": "\x1b",
}


def reads(conn, gate: str) -> bool:
    return conn.execute(f"SELECT public.{READERS[gate]}()").fetchone()[0]


def bypass_guard(conn, sql: str, params=()) -> None:
    """Write dot_config behind the database's back: what only a superuser can do."""
    with conn.transaction():
        conn.execute("ALTER TABLE dot_config DISABLE TRIGGER tg_dot_config_gate_guard")
        conn.execute(sql, params)
        conn.execute("ALTER TABLE dot_config ENABLE ALWAYS TRIGGER tg_dot_config_gate_guard")


def test_every_governable_gate_has_a_reader_and_it_is_set_in_one_place():
    assert set(READERS) == set(GOVERNABLE)


@pytest.mark.parametrize("gate", GOVERNABLE)
def test_reader_reads_closed_the_moment_its_window_ends_before_any_watchdog(db, gate):
    gate_open(db, gate=gate, ttl=1)
    assert reads(db, gate) is True
    time.sleep(1.2)
    assert value(db, gate) == "true", "no watchdog ran: the value is still 'true'"
    assert reads(db, gate) is False
    state = db.execute("SELECT reads_open, orphaned FROM v_dot_iu_gates WHERE gate_key = %s",
                       (gate,)).fetchone()
    assert state == (False, True)


def test_the_logger_records_what_the_readers_say_inside_and_after_a_window(db):
    log = ("SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', "
           "'alice', repeat('a', 32))")
    gate_open(db, gate=GATE, ttl=1)
    inside = db.execute(log).fetchone()[0]
    time.sleep(1.2)
    after = db.execute(log).fetchone()[0]
    snapshots = dict(db.execute(
        "SELECT run_id, gate_snapshot FROM dot_iu_command_run WHERE run_id IN (%s, %s)",
        (inside, after)).fetchall())
    assert snapshots[inside][GATE] == "true"
    assert snapshots[after][GATE] == "false", "an expired window is recorded as closed"
    assert set(snapshots[after]) == set(GOVERNABLE) | set(NEVER_FLIP)


def forge_transition(conn, gate: str, *, expires: str, created: str = "now()",
                     transition_id: int | None = None) -> None:
    """An open written behind every trigger (replica mode), as a superuser could."""
    run_id = conn.execute("SELECT max(run_id) FROM dot_iu_command_run").fetchone()[0]
    columns = "gate_key, action, prev_value, new_value, approval_id, ttl_seconds, expires_at, " \
              "actor, run_id, created_at"
    values = f"%s, 'open', 'false', 'true', 'FORGED', 3600, {expires}, 'mallory', %s, {created}"
    if transition_id is not None:
        columns, values = "transition_id, " + columns, f"{transition_id}, " + values
    override = " OVERRIDING SYSTEM VALUE" if transition_id is not None else ""
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(f"INSERT INTO iu_gate_transition ({columns}){override} VALUES ({values})",
                     (gate, run_id))


def test_an_endless_window_is_refused_by_the_transition_ledger_itself(db):
    gate_open(db, gate=GATE, ttl=60)
    with pytest.raises(psycopg.errors.CheckViolation, match="window_within_ttl"):
        forge_transition(db, GATE, expires="'infinity'")


def test_the_latest_transition_is_found_by_id_not_by_a_timestamp_a_writer_chooses(db):
    """A forged open slipped in below the real close (a lower id, a later created_at) does
    not outrank it, even with the value forced to 'true' behind the guard."""
    gate_open(db, gate=RUNTIME_GATE, ttl=60)
    gate_close(db, gate=RUNTIME_GATE)
    forge_transition(db, RUNTIME_GATE, transition_id=0, expires="now() + interval '10 minutes'",
                     created="now() + interval '1 second'")
    bypass_guard(db, "UPDATE dot_config SET value = 'true' WHERE key = %s", (RUNTIME_GATE,))
    assert value(db, RUNTIME_GATE) == "true"
    assert reads(db, RUNTIME_GATE) is False


def test_a_window_recorded_ahead_of_time_reads_closed(db):
    gate_open(db, gate=GATE, ttl=60)
    forge_transition(db, GATE, created="now() + interval '30 minutes'",
                     expires="now() + interval '40 minutes'")
    assert value(db, GATE) == "true"
    assert reads(db, GATE) is False


@pytest.mark.parametrize("gate", NEVER_FLIP)
@pytest.mark.parametrize("who", ["superuser", "owner role", "replica mode"])
def test_a_never_flip_gate_holds_false_whoever_writes(db, gate, who):
    before = db.execute("SELECT * FROM dot_config ORDER BY key").fetchall()
    with db.transaction(force_rollback=True):
        if who == "owner role":
            db.execute("SET LOCAL ROLE dot_iu_owner")
        if who == "replica mode":
            db.execute("SET LOCAL session_replication_role = replica")
        pgtap.throws_ok(db, "UPDATE dot_config SET value = 'true' WHERE key = %s", "42501",
                        "holds 'false' and nothing else", params=(gate,))
    pgtap.throws_ok(db, "UPDATE dot_config SET value = 'yes' WHERE key = %s", "42501",
                    params=(gate,))
    pgtap.throws_ok(db, "INSERT INTO dot_config (key, value) VALUES (%s, 'true') "
                        "ON CONFLICT (key) DO UPDATE SET value = 'true'", "42501", params=(gate,))
    assert db.execute("SELECT * FROM dot_config ORDER BY key").fetchall() == before


@pytest.mark.parametrize("who", ["superuser", "owner role"])
def test_a_governable_gate_becomes_true_only_through_fn_iu_gate_open(db, who):
    with db.transaction(force_rollback=True):
        if who == "owner role":
            db.execute("SET LOCAL ROLE dot_iu_owner")
        pgtap.throws_ok(db, "UPDATE dot_config SET value = 'true' WHERE key = %s", "42501",
                        "only by fn_iu_gate_open", params=(GATE,))
    with db.transaction(force_rollback=True):
        db.execute("DELETE FROM dot_config WHERE key = %s", (GATE,))
        pgtap.throws_ok(db, "INSERT INTO dot_config (key, value) VALUES (%s, 'true')", "42501",
                        params=(GATE,))
    with db.transaction(force_rollback=True):
        db.execute("DELETE FROM dot_config WHERE key = %s", (GATE,))
        pgtap.throws_ok(db, "UPDATE dot_config SET key = %s, value = 'true' "
                            "WHERE key = 'iu_core.delivery_enabled'", "42501", params=(GATE,))
    assert value(db, GATE) == "false"


HAND_OPEN = (
    "INSERT INTO iu_gate_transition (gate_key, action, prev_value, new_value, approval_id,"
    " ttl_seconds, expires_at, actor, reason, run_id)"
    " SELECT %s, 'open', 'false', 'true', 'CHG-BY-HAND', 600, now() + interval '10 minutes',"
    " 'owner@example', 'by hand', max(run_id) FROM dot_iu_command_run"
)
# fn_iu_gate_open's UPDATE, byte for byte: the guard compares the statement that fired it.
OPEN_UPDATE = """UPDATE public.dot_config
       SET value = 'true', updated_at = pg_catalog.now()
     WHERE key = p_gate"""


@pytest.mark.parametrize("who", ["superuser", "owner role"])
def test_an_open_transition_written_by_hand_does_not_let_the_owner_set_true(db, who):
    """The guard wants fn_iu_gate_open itself on the call stack, not only its ledger row."""
    gate_open(db, gate=GATE, ttl=1)
    gate_close(db, gate=GATE)
    with db.transaction(force_rollback=True):
        if who == "owner role":
            db.execute("SET LOCAL ROLE dot_iu_owner")
        db.execute(HAND_OPEN, (GATE,))
        pgtap.throws_ok(db, "UPDATE dot_config SET value = 'true' WHERE key = %s", "42501",
                        "only by fn_iu_gate_open", params=(GATE,))
    with db.transaction(force_rollback=True):
        db.execute(HAND_OPEN, (GATE,))
        db.execute("DELETE FROM dot_config WHERE key = %s", (GATE,))
        pgtap.throws_ok(db, "INSERT INTO dot_config (key, value) VALUES (%s, 'true')", "42501",
                        params=(GATE,))
    assert value(db, GATE) == "false"


@pytest.mark.parametrize("disguise", [
    "its exact statement text, from another function",
    "a frame forged inside the statement text",
])
def test_a_function_posing_as_fn_iu_gate_open_is_refused(db, disguise):
    gate_open(db, gate=GATE, ttl=1)
    gate_close(db, gate=GATE)
    statement = (OPEN_UPDATE if disguise.startswith("its exact") else
                 "UPDATE public.dot_config SET value = 'true' WHERE key = p_gate /*\"\n"
                 "PL/pgSQL function public.fn_iu_gate_open(text,text,text,text,integer) line 78"
                 " at SQL statement\n*/")
    with db.transaction(force_rollback=True):
        db.execute(
            "CREATE FUNCTION pg_temp.fn_iu_gate_open(p_gate text, a text, b text, c text,"
            f" d integer) RETURNS void LANGUAGE plpgsql AS $f$ BEGIN {statement}; END $f$")
        db.execute(HAND_OPEN, (GATE,))
        pgtap.throws_ok(db, "SELECT pg_temp.fn_iu_gate_open(%s, 'a', 'b', 'c', 1)", "42501",
                        "only by fn_iu_gate_open", params=(GATE,))
    assert value(db, GATE) == "false"


def test_the_guard_knows_fn_iu_gate_open_s_statement_and_open_works_from_any_depth(db):
    source = db.execute("SELECT prosrc FROM pg_proc WHERE oid = "
                        "'public.fn_iu_gate_open(text, text, text, text, integer)'::regprocedure"
                        ).fetchone()[0]
    assert source.count(OPEN_UPDATE) == 1
    guard = db.execute("SELECT prosrc FROM pg_proc WHERE oid = "
                       "'public.fn_dot_iu_gate_guard()'::regprocedure").fetchone()[0]
    assert "PL/pgSQL function public.fn_iu_gate_open(text,text,text,text,integer) line " in guard
    db.execute("DO $$ BEGIN PERFORM public.fn_iu_gate_open('iu_core.composer_enabled', "
               "'CHG-7', 'ops@example', 'nested', 60); END $$")
    assert value(db, GATE) == "true" and reads(db, GATE) is True
    gate_close(db, gate=GATE)


def test_closing_and_deleting_a_gate_by_hand_stay_allowed(db):
    gate_open(db, gate=GATE, ttl=600)
    pgtap.lives_ok(db, "UPDATE dot_config SET value = 'false' WHERE key = %s", params=(GATE,))
    assert reads(db, GATE) is False
    pgtap.lives_ok(db, "UPDATE dot_config SET value = 'maybe' WHERE key = %s", params=(GATE,))
    assert reads(db, GATE) is False
    pgtap.lives_ok(db, "DELETE FROM dot_config WHERE key = %s", params=(GATE,))
    assert reads(db, GATE) is False


def test_an_open_cannot_be_replayed_to_reopen_a_gate_closed_by_hand(db):
    """The live window's open transition is not reusable: 'true' needs a new open."""
    gate_open(db, gate=GATE, ttl=600)
    db.execute("UPDATE dot_config SET value = 'false' WHERE key = %s", (GATE,))
    pgtap.throws_ok(db, "UPDATE dot_config SET value = 'true' WHERE key = %s", "42501",
                    params=(GATE,))


def test_an_orphan_made_behind_the_guard_reads_closed_and_the_watchdog_closes_it(db):
    bypass_guard(db, "UPDATE dot_config SET value = 'true' WHERE key = %s", (GATE,))
    assert value(db, GATE) == "true"
    assert reads(db, GATE) is False
    closed = watchdog(db)
    assert [(entry["gate"], entry["cause"]) for entry in closed] == [(GATE, "orphaned")]
    assert value(db, GATE) == "false"


@pytest.mark.parametrize("name", sorted(INVISIBLE))
def test_an_approval_holding_an_invisible_or_control_character_is_refused_23514(db, name):
    for approval in (INVISIBLE[name], f"CHG{INVISIBLE[name]}7781"):
        sql, params = open_call(approval=approval)
        pgtap.throws_ok(db, sql, "23514", "without an approval", params=params)
    assert value(db, GATE) == "false"
    assert transitions(db) == []


@pytest.mark.parametrize("name", sorted(INVISIBLE))
def test_an_actor_holding_an_invisible_or_control_character_is_refused_22023(db, name):
    actor = f"ops{INVISIBLE[name]}"
    for call in (open_call(actor=actor), close_call(actor=actor), watchdog_call(actor=actor)):
        sql, params = call
        pgtap.throws_ok(db, sql, "22023", "invisible character", params=params)
    pgtap.throws_ok(db, "SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', "
                        "'planned', %s, repeat('a', 32))", "22023", params=(actor,))
    assert transitions(db) == []


@pytest.mark.parametrize("actor,fragment", [
    ("x" * 201, "at most 200"), ("---", "no letter or digit"), ("\u2014", "no letter or digit"),
])
def test_an_actor_too_long_or_without_a_letter_is_refused_22023(db, actor, fragment):
    sql, params = open_call(actor=actor)
    pgtap.throws_ok(db, sql, "22023", fragment, params=params)


@pytest.mark.parametrize("approval", ["x" * 201, "---"])
def test_an_approval_too_long_or_without_a_letter_is_refused_23514(db, approval):
    sql, params = open_call(approval=approval)
    pgtap.throws_ok(db, sql, "23514", params=params)


def test_names_of_any_script_are_accepted(db):
    gate_open(db, gate=GATE, actor="José Ñúñez", approval="変更-7781", ttl=60)
    gate_close(db, gate=GATE, actor="Ødegård")
    assert [row[1] for row in transitions(db, GATE)] == ["open", "close"]


def test_a_reason_over_2000_characters_is_refused_22023(db):
    for call in (open_call(reason="r" * 2001), close_call(reason="r" * 2001)):
        sql, params = call
        pgtap.throws_ok(db, sql, "22023", "at most 2000", params=params)
    gate_open(db, gate=GATE, reason="r" * 2000, ttl=60)


def test_the_watchdog_finishes_while_another_session_writes_an_unrelated_key(pg, db, db_name):
    gate_open(db, gate=GATE, ttl=1)
    time.sleep(1.2)
    db.execute("INSERT INTO dot_config (key, value) VALUES ('iu_core.other_setting', '1')")
    with pg.connect(db_name, autocommit=False) as writer:
        writer.execute("UPDATE dot_config SET value = '2' WHERE key = 'iu_core.other_setting'")
        db.execute("SET statement_timeout = '3s'")
        started = time.monotonic()
        closed = watchdog(db)
        elapsed = time.monotonic() - started
        writer.rollback()
    assert [entry["gate"] for entry in closed] == [GATE]
    assert elapsed < 1.0, f"the watchdog waited {elapsed:.1f}s for an unrelated writer"


def test_the_watchdog_skips_a_gate_an_apply_holds_and_says_so(pg, db, db_name):
    gate_open(db, gate=GATE, ttl=1)
    time.sleep(1.2)
    notices = []
    db.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    with pg.connect(db_name, autocommit=False) as apply:
        apply.execute("SELECT 1 FROM dot_config WHERE key = %s FOR SHARE", (GATE,))
        db.execute("SET statement_timeout = '3s'")
        assert watchdog(db) == []
        apply.rollback()
    assert any("held by another transaction" in note for note in notices), notices
    assert reads(db, GATE) is False
    assert [entry["gate"] for entry in watchdog(db)] == [GATE]


def test_a_close_waits_for_an_apply_holding_the_gate(pg, db, db_name):
    gate_open(db, gate=GATE, ttl=600)
    result = {}
    with pg.connect(db_name, autocommit=False) as apply:
        apply.execute("SELECT 1 FROM dot_config WHERE key = %s FOR SHARE", (GATE,))

        def close():
            with pg.connect(db_name) as other:
                result["closed"] = gate_close(other, gate=GATE)

        closer = threading.Thread(target=close)
        closer.start()
        closer.join(0.5)
        assert closer.is_alive(), "the close did not wait for the apply"
        apply.commit()
    closer.join(5)
    assert result["closed"]["changed"] is True


def test_the_three_four_refusal_table_keeps_its_sqlstates(db):
    """The input rules add reasons to refuse, never new SQLSTATEs."""
    cases = [
        (open_call(gate=NEVER_FLIP[0]), "42501"),
        (open_call(gate="iu_core.unknown_enabled"), "22023"),
        (open_call(approval=None), "23514"),
        (open_call(approval="  "), "23514"),
        (open_call(ttl=0), "22023"),
        (open_call(actor=None), "22023"),
        (close_call(gate=NEVER_FLIP[1]), "22023"),
    ]
    for (sql, params), sqlstate in cases:
        pgtap.throws_ok(db, sql, sqlstate, params=params)
    gate_open(db, gate=GATE, ttl=60)
    sql, params = open_call()
    pgtap.throws_ok(db, sql, "55000", "already open", params=params)


def test_readers_are_callable_by_the_runtime_and_auditor_roles_only(db):
    for reader in READERS.values():
        for role in ("dot_iu_runtime", "dot_iu_auditor"):
            pgtap.function_privs_are(db, reader, [], role, ["EXECUTE"])
        pgtap.function_privs_are(db, reader, [], "public", [])
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL ROLE dot_iu_runtime")
        assert db.execute("SELECT count(*) FROM v_dot_iu_gates").fetchone()[0] == 9
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("SELECT * FROM dot_config")


# One gate's reading has a fast path (fn_iu_gate_reads_open, which the readers use, and
# apply_begin when the cached snapshot is not valid) beside the full state (fn_iu_gate_state,
# which the views, verify and the snapshot use):
# the two must agree in every state a gate can be in.
WINDOWS = {
    "no transition": None,
    "live open": ("open", "-1 second", "+10 minutes"),
    "expired open": ("open", "-20 minutes", "-10 minutes"),
    "open recorded ahead of time": ("open", "+5 minutes", "+15 minutes"),
    "open longer than an hour ahead": ("open", "-1 second", "+70 minutes"),
    "close": ("close", "-1 second", None),
}
VALUES = {"'true'": "true", "'false'": "false", "'TRUE'": "TRUE", "missing": None}


def put_state(conn, gate: str, value: str | None, window) -> None:
    """A gate's value and latest transition, written as only a superuser could (guards off)."""
    with conn.transaction():
        conn.execute("ALTER TABLE dot_config DISABLE TRIGGER tg_dot_config_gate_guard")
        conn.execute("ALTER TABLE iu_gate_transition DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE iu_gate_transition DROP CONSTRAINT IF EXISTS"
                     " ck_iu_gate_transition_window_within_ttl")  # a superuser can write any window
        if value is None:
            conn.execute("DELETE FROM dot_config WHERE key = %s", (gate,))
        else:
            conn.execute("UPDATE dot_config SET value = %s WHERE key = %s", (value, gate))
        if window is not None:
            action, created, expires = window
            run = conn.execute("SELECT max(run_id) FROM dot_iu_command_run").fetchone()[0]
            conn.execute(
                "INSERT INTO iu_gate_transition (gate_key, action, prev_value, new_value,"
                " approval_id, ttl_seconds, expires_at, actor, reason, run_id, created_at)"
                " VALUES (%s, %s, 'false', %s, %s, %s, now() + %s::interval, 'x', 'y', %s,"
                " now() + %s::interval)",
                (gate, action, "true" if action == "open" else "false",
                 "CHG-1" if action == "open" else None, 600 if action == "open" else None,
                 expires, run, created))
        conn.execute("ALTER TABLE iu_gate_transition ENABLE TRIGGER USER")
        conn.execute("ALTER TABLE dot_config ENABLE ALWAYS TRIGGER tg_dot_config_gate_guard")


@pytest.mark.parametrize("window", WINDOWS, ids=list(WINDOWS))
@pytest.mark.parametrize("value", VALUES, ids=list(VALUES))
def test_the_fast_path_and_the_full_state_read_every_gate_alike(db, value, window):
    gate_open(db, gate="iu_core.delivery_enabled", ttl=60)  # a run row for the transitions
    for gate in (GATE, "iu_core.vector_sync_enabled"):
        put_state(db, gate, VALUES[value], WINDOWS[window])
    rows = db.execute(
        "SELECT g.gate_key, public.fn_iu_gate_reads_open(g.gate_key), s.reads_open"
        "  FROM fn_iu_gate_classes() AS g LEFT JOIN fn_iu_gate_state(NULL) AS s USING (gate_key)"
    ).fetchall()
    assert all(fast == full for _, fast, full in rows), rows
    expected = value == "'true'" and window == "live open"
    assert dict((key, fast) for key, fast, _ in rows)[GATE] is expected
    assert reads(db, GATE) is expected
    assert db.execute("SELECT public.fn_iu_gate_reads_open('no.such.gate')").fetchone()[0] is False
