"""Concurrent gate calls serialize on the gate's dot_config row (SPEC 3.4; docs/gates.md).

Real parallel sessions: each thread has its own connection; a barrier releases them together.
"""

from __future__ import annotations

import random
import threading
import time

import psycopg
from gate_helpers import (
    CLOSE,
    GATE,
    OPEN,
    WATCHDOG,
    counts,
    gate_close,
    set_value,
    transitions,
    watchdog,
)

SESSIONS = 16
GATES = (GATE, "iu_core.delivery_enabled")

# A gate that reads open without a live window on record: what must never be observed while
# every window is long (so none can expire during the test).
UNGUARDED_OPEN = """
SELECT c.key
  FROM dot_config AS c
 WHERE c.key = ANY(%s) AND c.value = 'true'
   AND NOT EXISTS (
        SELECT 1
          FROM (SELECT t.action, t.expires_at FROM iu_gate_transition AS t
                 WHERE t.gate_key = c.key
                 ORDER BY t.created_at DESC, t.transition_id DESC LIMIT 1) AS latest
         WHERE latest.action = 'open' AND latest.expires_at > clock_timestamp())
"""


def run_parallel(pg, db_name, work, sessions):
    """Run work(conn, index) in `sessions` threads, each on its own connection, released together.

    Returns one ("ok", result) or ("error", sqlstate) per session, in index order.
    """
    barrier = threading.Barrier(sessions)
    results = [None] * sessions

    def session(index):
        with pg.connect(db_name) as conn:
            barrier.wait()
            try:
                results[index] = ("ok", work(conn, index))
            except psycopg.Error as error:
                results[index] = ("error", error.sqlstate)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a session hung"
    return results


def chain_problems(conn) -> list[str]:
    """Each gate's transitions must form one serial history.

    Every row's prev_value is the previous row's new_value, an open only follows a closed gate,
    every transition has its run-ledger row (same transaction, matching command), and a
    watchdog close never ended a window that was still live.
    """
    rows = conn.execute("""
        SELECT t.gate_key, t.action, t.prev_value, t.new_value, t.expires_at, t.created_at,
               r.command_name, r.run_status
          FROM iu_gate_transition AS t
          LEFT JOIN dot_iu_command_run AS r USING (run_id)
         ORDER BY t.gate_key, t.created_at, t.transition_id""").fetchall()
    problems, last = [], {}
    for gate, action, prev, new, expires_at, created_at, command, status in rows:
        previous = last.get(gate)
        if previous and prev != previous[3]:
            problems.append(f"{gate}: {action} saw {prev!r} after {previous[1]} "
                            f"set {previous[3]!r}")
        if action == "open" and prev == "true":
            problems.append(f"{gate}: opened while already open")
        if action == "watchdog_close" and previous and previous[1] == "open" \
                and previous[4] > created_at:
            problems.append(f"{gate}: the watchdog closed a live window")
        want = {"open": "dot_iu_gate_open", "close": "dot_iu_gate_close",
                "watchdog_close": "dot_iu_gate_watchdog"}[action]
        if (command, status) != (want, "applied"):
            problems.append(f"{gate}: {action} has run-ledger row {(command, status)}")
        last[gate] = (gate, action, prev, new, expires_at)
    return problems


def test_of_16_simultaneous_opens_of_one_gate_exactly_one_wins_and_15_raise_55000(pg, db_name):
    # A blocker holds the gate's row so all 16 calls are queued on it before any can win.
    with pg.connect(db_name, autocommit=False) as blocker:
        blocker.execute("SELECT 1 FROM dot_config WHERE key = %s FOR UPDATE", (GATE,))
        outcome = {}

        def release_when_all_wait():
            deadline = time.monotonic() + 60
            with pg.connect(db_name) as watcher:
                while time.monotonic() < deadline:
                    waiting = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE '%%fn_iu_gate_open%%'"
                    ).fetchone()[0]
                    if waiting == SESSIONS:
                        outcome["queued"] = waiting
                        break
                    time.sleep(0.02)
            blocker.rollback()

        releaser = threading.Thread(target=release_when_all_wait)
        releaser.start()
        results = run_parallel(
            pg, db_name,
            lambda conn, i: conn.execute(OPEN, (GATE, f"CHG-{i}", f"ops-{i}", "race",
                                               600)).fetchone()[0],
            SESSIONS,
        )
        releaser.join()
    assert outcome.get("queued") == SESSIONS, "the sessions never all queued on the row lock"
    winners = [result for kind, result in results if kind == "ok"]
    losers = [result for kind, result in results if kind == "error"]
    assert len(winners) == 1 and losers == ["55000"] * (SESSIONS - 1), results
    with pg.connect(db_name) as conn:
        assert transitions(conn) == [(GATE, "open", "false", "true")]
        assert counts(conn) == (1, 1)
        assert conn.execute("SELECT value FROM dot_config WHERE key = %s",
                            (GATE,)).fetchone()[0] == "true"


def test_of_16_simultaneous_opens_released_by_a_barrier_exactly_one_wins(pg, db_name):
    results = run_parallel(
        pg, db_name,
        lambda conn, i: conn.execute(OPEN, (GATE, f"CHG-{i}", f"ops-{i}", "race",
                                           600)).fetchone()[0],
        SESSIONS,
    )
    assert sorted(kind for kind, _ in results) == ["error"] * 15 + ["ok"]
    assert {result for kind, result in results if kind == "error"} == {"55000"}
    with pg.connect(db_name) as conn:
        assert transitions(conn) == [(GATE, "open", "false", "true")]


def test_interleaved_open_close_watchdog_never_leave_a_gate_open_without_a_live_window(
        pg, db_name):
    stop = threading.Event()
    violations = []

    def checker():
        with pg.connect(db_name) as conn:
            while not stop.is_set():
                found = conn.execute(UNGUARDED_OPEN, (list(GATES),)).fetchall()
                if found:
                    violations.append(found)

    def work(conn, index):
        rng = random.Random(index)
        outcomes = []
        for step in range(25):
            gate = rng.choice(GATES)
            action = rng.choice(("open", "open", "close", "watchdog"))
            try:
                if action == "open":
                    conn.execute(OPEN, (gate, f"CHG-{index}-{step}", f"ops-{index}", "mix", 600))
                elif action == "close":
                    conn.execute(CLOSE, (gate, f"ops-{index}", "mix"))
                else:
                    conn.execute(WATCHDOG, (f"cron-{index}",))
                outcomes.append((action, "ok"))
            except psycopg.Error as error:
                outcomes.append((action, error.sqlstate))
        return outcomes

    watcher = threading.Thread(target=checker)
    watcher.start()
    try:
        results = run_parallel(pg, db_name, work, 8)
    finally:
        stop.set()
        watcher.join()
    assert all(kind == "ok" for kind, _ in results), results
    outcomes = [outcome for _, session in results for outcome in session]
    # The only refusal possible here is an open that lost the race to another open.
    assert {state for action, state in outcomes if state != "ok"} <= {"55000"}
    assert all(action == "open" for action, state in outcomes if state == "55000")
    assert violations == []
    with pg.connect(db_name) as conn:
        assert conn.execute(UNGUARDED_OPEN, (list(GATES),)).fetchall() == []
        assert chain_problems(conn) == []
        applied = conn.execute(
            "SELECT count(*) FROM dot_iu_command_run WHERE run_status = 'applied'").fetchone()[0]
        assert counts(conn)[0] == applied
        opens = sum(1 for action, state in outcomes if action == "open" and state == "ok")
        assert conn.execute("SELECT count(*) FROM iu_gate_transition WHERE action = 'open'"
                            ).fetchone()[0] == opens


def test_short_windows_racing_the_watchdog_all_end_closed_with_a_serial_history(pg, db_name):
    def work(conn, index):
        rng = random.Random(100 + index)
        for step in range(15):
            gate = rng.choice(GATES)
            action = rng.choice(("open", "watchdog", "close"))
            try:
                if action == "open":
                    conn.execute(OPEN, (gate, f"CHG-{index}-{step}", f"ops-{index}", "short",
                                        1))
                elif action == "close":
                    conn.execute(CLOSE, (gate, f"ops-{index}", "short"))
                else:
                    conn.execute(WATCHDOG, (f"cron-{index}",))
            except psycopg.errors.ObjectNotInPrerequisiteState:
                pass  # 55000: another session's window is open
            time.sleep(rng.random() / 20)

    results = run_parallel(pg, db_name, work, 8)
    assert all(kind == "ok" for kind, _ in results), results
    time.sleep(1.1)  # every window has ended by now
    with pg.connect(db_name) as conn:
        watchdog(conn)
        assert conn.execute("SELECT count(*) FROM dot_config WHERE key = ANY(%s)"
                            " AND value = 'true'", (list(GATES),)).fetchone()[0] == 0
        assert chain_problems(conn) == []
        assert watchdog(conn) == []


def test_a_watchdog_waiting_on_a_close_in_flight_rereads_the_gate_and_closes_nothing(pg, db_name):
    with pg.connect(db_name) as conn:
        set_value(conn, GATE, "true")  # orphaned: the watchdog's candidate
    with pg.connect(db_name, autocommit=False) as closer:
        gate_close(closer)  # not committed yet: holds the gate's row lock
        done = {}

        def run_watchdog():
            with pg.connect(db_name) as conn:
                done["closed"] = watchdog(conn)

        thread = threading.Thread(target=run_watchdog)
        thread.start()
        with pg.connect(db_name) as conn:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%%fn_iu_gate_watchdog%%'").fetchone()[0]:
                time.sleep(0.02)
        closer.commit()
        thread.join(timeout=60)
    assert done["closed"] == [], "the watchdog must re-read the value under the lock"
    with pg.connect(db_name) as conn:
        assert transitions(conn) == [(GATE, "close", "true", "false")]
