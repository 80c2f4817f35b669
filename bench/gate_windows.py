"""Gate windows for the bench, opened and closed through the gate protocol (SPEC 3.4, 3.6).

A gate reads open only inside a live window, at most an hour long, so an item opens the gates
it needs right before what it times (item 1 before every pgbench run), never once for the whole
bench. The bench opens gates as the server's superuser, which the gate protocol audits like
anyone else (a ledger row and a transition per call).
"""

from __future__ import annotations

RUNTIME_GATE = "iu_core.operator_runtime_enabled"
APPROVAL = "BENCH-1"
ACTOR = "bench"
TTL_SECONDS = 3600


def needed(conn, commands: list[str]) -> list[str]:
    """The gates an 'applied' row of each of ``commands`` needs: the runtime gate and the
    catalog rows' required_gates."""
    rows = conn.execute(
        "SELECT DISTINCT unnest(required_gates) FROM public.dot_iu_command_catalog"
        " WHERE command_name = ANY (%s)",
        (commands,),
    ).fetchall()
    return sorted({RUNTIME_GATE, *(row[0] for row in rows)})


def open_gates(conn, gates: list[str], ttl: int = TTL_SECONDS) -> None:
    for gate in gates:
        conn.execute(
            "SELECT public.fn_iu_gate_open(%s, %s, %s, 'bench run', %s::integer)",
            (gate, APPROVAL, ACTOR, ttl),
        )


def close_gates(conn, gates: list[str]) -> None:
    for gate in gates:
        conn.execute("SELECT public.fn_iu_gate_close(%s, %s, 'bench run done')", (gate, ACTOR))
