"""Shared helpers for the gate-protocol tests (SPEC 3.4): calls, ledgers, gate values."""

from __future__ import annotations

GOVERNABLE = (
    "iu_core.composer_enabled",
    "iu_core.structure_ops_enabled",
    "iu_core.delivery_enabled",
    "iu_core.three_axis_auto_refresh_enabled",
    "queue.job_substrate.enabled",
    "queue.dlq.replay_enabled",
    "iu_core.operator_runtime_enabled",
)
NEVER_FLIP = ("iu_enact.allow_no_review_decision", "iu_core.vector_sync_enabled")
GATE = "iu_core.composer_enabled"
RUNTIME_GATE = "iu_core.operator_runtime_enabled"
GATE_COMMANDS = ("dot_iu_gate_open", "dot_iu_gate_close", "dot_iu_gate_watchdog")

OPEN = "SELECT fn_iu_gate_open(%s::text, %s::text, %s::text, %s::text, %s::integer)"
CLOSE = "SELECT fn_iu_gate_close(%s::text, %s::text, %s::text)"
WATCHDOG = "SELECT fn_iu_gate_watchdog(%s::text)"
VERIFY = "SELECT fn_iu_gate_verify_closed(%s::text)"


def open_call(gate=GATE, approval="CHG-1042", actor="ops@example", reason="deploy 7.3",
              ttl=600):
    """(sql, params) of one fn_iu_gate_open call."""
    return OPEN, (gate, approval, actor, reason, ttl)


def close_call(gate=GATE, actor="ops@example", reason="deploy done"):
    return CLOSE, (gate, actor, reason)


def watchdog_call(actor="cron@host"):
    return WATCHDOG, (actor,)


def gate_open(conn, gate=GATE, ttl=600, **kwargs) -> dict:
    sql, params = open_call(gate=gate, ttl=ttl, **kwargs)
    return conn.execute(sql, params).fetchone()[0]


def gate_close(conn, gate=GATE, **kwargs) -> dict:
    sql, params = close_call(gate=gate, **kwargs)
    return conn.execute(sql, params).fetchone()[0]


def watchdog(conn, actor="cron@host") -> list:
    return conn.execute(WATCHDOG, (actor,)).fetchone()[0]


def verify(conn, gate=None) -> dict:
    return conn.execute(VERIFY, (gate,)).fetchone()[0]


def value(conn, gate=GATE) -> str | None:
    row = conn.execute("SELECT value FROM dot_config WHERE key = %s", (gate,)).fetchone()
    return None if row is None else row[0]


def config(conn) -> list[tuple]:
    """Every dot_config row, updated_at included: a refusal must leave all of it as it was."""
    return conn.execute("SELECT key, value, updated_at FROM dot_config ORDER BY key").fetchall()


def transitions(conn, gate=None) -> list[tuple]:
    return conn.execute(
        "SELECT gate_key, action, prev_value, new_value FROM iu_gate_transition"
        " WHERE %s::text IS NULL OR gate_key = %s ORDER BY transition_id",
        (gate, gate),
    ).fetchall()


def runs(conn) -> list[tuple]:
    return conn.execute(
        "SELECT command_name, run_mode, run_status, actor FROM dot_iu_command_run ORDER BY run_id"
    ).fetchall()


def counts(conn) -> tuple[int, int]:
    """(transition rows, run-ledger rows)."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM iu_gate_transition),"
        " (SELECT count(*) FROM dot_iu_command_run)"
    ).fetchone()


def set_value(conn, gate: str, new_value: str) -> None:
    """Write a gate behind the protocol's back (how an orphaned open comes about). From
    0011_gates_fail_closed the database refuses such a write (tg_dot_config_gate_guard), so it
    is made with the guard disabled, as only a superuser can."""
    guarded = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = "
                           "'tg_dot_config_gate_guard')").fetchone()[0]
    with conn.transaction():
        if guarded:
            conn.execute("ALTER TABLE dot_config DISABLE TRIGGER tg_dot_config_gate_guard")
        conn.execute("UPDATE dot_config SET value = %s WHERE key = %s", (new_value, gate))
        if guarded:
            conn.execute("ALTER TABLE dot_config ENABLE ALWAYS TRIGGER tg_dot_config_gate_guard")


# Maintenance for a raw DELETE or TRUNCATE of a ledger: the deleting transaction names itself
# (fn_dot_iu_append_only_guard v2; docs/seals.md).
MAINTENANCE = ("SELECT pg_catalog.set_config('dot_iu.ledger_maintenance', "
               "pg_catalog.pg_current_xact_id()::text, true)")


def write_run(conn, command: str, mode: str, status: str, actor: str = "ops",
              digest: str = "0123456789abcdef0123456789abcdef") -> int:
    """One run-ledger row, through the logger except an applied apply row: the logger writes
    that only while the command's gates read open (docs/runtime.md), so tests that count rows
    with every gate shut write it as the owner would, directly."""
    if (mode, status) == ("apply", "applied"):
        return conn.execute(
            "INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating, actor,"
            " params_digest) SELECT %s, %s, %s, coalesce((SELECT c.mutating FROM"
            " dot_iu_command_catalog AS c WHERE c.command_name = %s), true), %s, %s"
            " RETURNING run_id", (command, mode, status, command, actor, digest)).fetchone()[0]
    return conn.execute("SELECT fn_dot_iu_command_log(%s, %s, %s, %s, %s)",
                        (command, mode, status, actor, digest)).fetchone()[0]
