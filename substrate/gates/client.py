"""The bounded gate protocol (SPEC 3.4; docs/gates.md) as Python calls: what ``substrate gates``
and the operator runtime run.

``status(conn)`` reads ``fn_iu_gate_verify_closed``; ``call(conn, action, **params)`` runs one
``public.fn_iu_gate_*`` function (open, close, watchdog) in a transaction of its own; the
function audits an open, a close or a watchdog close twice (``iu_gate_transition`` and the run
ledger) in that transaction. A call the database refuses raises and writes nothing, so ``call``
rolls back and records one ``refused`` run-ledger row in a new transaction, then raises
``GateError``; any other database error (a lock or statement timeout included) is recorded the
same way as ``failed``.

The row is written by the database's refusal recorder, ``public.fn_iu_gate_record_refusal``,
which the gate operator role may execute (it may not execute the general logger): it computes
the digest of the parameters the gate function would have computed and writes the SQLSTATE,
the message and the gate as evidence, never the approval id or the reason (docs/roles.md). On
an older database without the recorder, the client writes the same row through
``fn_dot_iu_command_log`` itself.

The connection is passed in (psycopg 3, autocommit). Nothing here parses arguments or prints.
"""


from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

# What the protocol raises when it refuses a call (SPEC 3.4); 22003 is an out-of-range TTL that
# does not even fit the integer parameter. Any other error is recorded as 'failed'.
REFUSAL_SQLSTATES = frozenset({"42501", "22023", "23514", "55000", "22003"})
# Without the recorder (below), the ledger refuses a blank actor: a refusal for a blank actor
# is recorded under this name, as the recorder does.
MISSING_ACTOR = "(no actor given)"

# The database's refusal recorder (0010_least_privilege on), its call, and the parameters a
# call of an action may lack (close has no approval or TTL, the watchdog no gate either).
RECORDER = ("public.fn_iu_gate_record_refusal(text, text, text, text, text, text, numeric, "
            "text, text)")
HAS_RECORDER = f"SELECT pg_catalog.to_regprocedure('{RECORDER}') IS NOT NULL"
RECORD = (
    "SELECT public.fn_iu_gate_record_refusal(%(action)s::text, %(status)s::text, "
    "%(gate)s::text, %(approval_id)s::text, %(actor)s::text, %(reason)s::text, "
    "%(ttl_seconds)s::numeric, %(sqlstate)s::text, %(message)s::text)"
)
RECORD_DEFAULTS = {"gate": None, "approval_id": None, "actor": None, "reason": None,
                   "ttl_seconds": None}
# Without the recorder: the same parameter digests the fn_iu_gate_* functions write (their v1
# files), so a refused row and an applied row for the same parameters carry the same
# params_digest.
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
    error = GateError(action, status_, sqlstate, message)
    try:
        with conn.transaction():
            if conn.execute(HAS_RECORDER).fetchone()[0]:
                error.run_id = conn.execute(RECORD, {
                    **RECORD_DEFAULTS, **params, "action": action, "status": status_,
                    "sqlstate": sqlstate, "message": message}).fetchone()[0]
            else:
                error.run_id = _log_directly(conn, action, status_, sqlstate, message, params)
    except psycopg.Error as record_error:
        code, text = describe(record_error)
        error.record_error = f"SQLSTATE {code}: {text}"
    return error


def _log_directly(conn, action, status_, sqlstate, message, params) -> int:
    """The refusal row through the general logger: a database older than the recorder."""
    actor = params.get("actor")
    actor_given = isinstance(actor, str) and actor.strip() != ""
    evidence: dict[str, object] = {"sqlstate": sqlstate, "message": message}
    if "gate" in params:
        evidence["gate"] = params["gate"]
    if not actor_given:
        evidence["actor_missing"] = True
    return conn.execute(
        "SELECT public.fn_dot_iu_command_log(%(command)s, 'apply', %(status)s, "
        f"%(ledger_actor)s, {DIGESTS[action]}, %(evidence)s)",
        {**params, "command": COMMANDS[action], "status": status_,
         "ledger_actor": actor if actor_given else MISSING_ACTOR,
         "evidence": Jsonb(evidence)},
    ).fetchone()[0]
