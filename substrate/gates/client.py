"""The bounded gate protocol (SPEC 3.4) as Python calls: what ``substrate gates`` and the
operator runtime run.

``status(conn)`` reads ``fn_iu_gate_verify_closed``; ``call(conn, action, **params)`` runs one
``public.fn_iu_gate_*`` function (open, close, watchdog) in a transaction of its own; the
function audits an open, a close or a watchdog close twice (``iu_gate_transition`` and the run
ledger) in that transaction. A call the database refuses raises and writes nothing, so ``call``
rolls back and records one ``refused`` run-ledger row (SQLSTATE and message in its evidence, a
digest of the parameters, never the approval id or the reason) in a new transaction, then
raises ``GateError``; any other database error is recorded the same way as ``failed``.

The connection is passed in (psycopg 3, autocommit). Nothing here parses arguments or prints.
"""


from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

# What the protocol raises when it refuses a call (SPEC 3.4); 22003 is an out-of-range TTL that
# does not even fit the integer parameter. Any other error is recorded as 'failed'.
REFUSAL_SQLSTATES = frozenset({"42501", "22023", "23514", "55000", "22003"})
# The ledger refuses a blank actor; a refusal for a blank actor is recorded under this name.
MISSING_ACTOR = "(no actor given)"

# The same parameter digests the fn_iu_gate_* functions write (their v1 files), so a refused
# row and an applied row for the same parameters carry the same params_digest.
DIGESTS = {
    "open": (
        "pg_catalog.md5(pg_catalog.jsonb_build_object('gate', %(gate)s::text, "
        "'approval_id', %(approval_id)s::text, 'actor', %(actor)s::text, "
        "'reason', %(reason)s::text, 'ttl_seconds', %(ttl_seconds)s::numeric)::text)"
    ),
    "close": (
        "pg_catalog.md5(pg_catalog.jsonb_build_object('gate', %(gate)s::text, "
        "'actor', %(actor)s::text, 'reason', %(reason)s::text)::text)"
    ),
    "watchdog": "pg_catalog.md5(pg_catalog.jsonb_build_object('actor', %(actor)s::text)::text)",
}
CALLS = {
    "open": (
        "SELECT public.fn_iu_gate_open(%(gate)s, %(approval_id)s, %(actor)s, %(reason)s, "
        "%(ttl_seconds)s::integer)"
    ),
    "close": "SELECT public.fn_iu_gate_close(%(gate)s, %(actor)s, %(reason)s)",
    "watchdog": "SELECT public.fn_iu_gate_watchdog(%(actor)s)",
}
COMMANDS = {
    "open": "dot_iu_gate_open",
    "close": "dot_iu_gate_close",
    "watchdog": "dot_iu_gate_watchdog",
}


@dataclass(eq=False)
class GateError(Exception):
    """A gate call the database refused (or that failed), and how it was recorded."""

    action: str
    status: str  # 'refused' or 'failed'
    sqlstate: str | None
    message: str
    run_id: int | None = None  # the ledger row recording it, when recording worked
    record_error: str | None = None  # why recording it failed, when it did

    def __str__(self) -> str:
        return f"{self.status} (SQLSTATE {self.sqlstate}): {self.message}"


def describe(error: psycopg.Error) -> tuple[str | None, str]:
    """(SQLSTATE, primary message) of a database error."""
    message = error.diag.message_primary if error.diag else None
    return error.sqlstate, message or str(error).strip() or type(error).__name__


def status(conn: psycopg.Connection, gate: str | None = None) -> dict:
    """fn_iu_gate_verify_closed as a dict; writes nothing."""
    return conn.execute("SELECT public.fn_iu_gate_verify_closed(%s)", (gate,)).fetchone()[0]


def call(conn: psycopg.Connection, action: str, **params: object) -> object:
    """Run one protocol call (open, close, watchdog) in its own transaction; its jsonb result.

    ``conn`` must be in autocommit mode. On a database error the transaction is rolled back,
    the refusal (or failure) is recorded in a new transaction and GateError is raised.
    When the connection itself is lost the error propagates: nothing can be recorded.
    """
    try:
        with conn.transaction():
            return conn.execute(CALLS[action], params).fetchone()[0]
    except psycopg.Error as error:
        if conn.closed or conn.broken:
            raise
        sqlstate, message = describe(error)
    status_ = "refused" if sqlstate in REFUSAL_SQLSTATES else "failed"
    raise _recorded(conn, action, status_, sqlstate, message, params)


def _recorded(conn, action, status_, sqlstate, message, params) -> GateError:
    """Record a refused or failed call in a transaction of its own; the error to raise."""
    actor = params.get("actor")
    actor_given = isinstance(actor, str) and actor.strip() != ""
    evidence: dict[str, object] = {"sqlstate": sqlstate, "message": message}
    if "gate" in params:
        evidence["gate"] = params["gate"]
    if not actor_given:
        evidence["actor_missing"] = True
    error = GateError(action, status_, sqlstate, message)
    try:
        with conn.transaction():
            error.run_id = conn.execute(
                "SELECT public.fn_dot_iu_command_log(%(command)s, 'apply', %(status)s, "
                f"%(ledger_actor)s, {DIGESTS[action]}, %(evidence)s)",
                {**params, "command": COMMANDS[action], "status": status_,
                 "ledger_actor": actor if actor_given else MISSING_ACTOR,
                 "evidence": Jsonb(evidence)},
            ).fetchone()[0]
    except psycopg.Error as record_error:
        code, text = describe(record_error)
        error.record_error = f"SQLSTATE {code}: {text}"
    return error
