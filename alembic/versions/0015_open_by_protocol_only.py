"""Open by the protocol only: the gate guard checks its caller; the comments say what is true now.

Revision ID: 0015_open_by_protocol_only
Revises: 0014_seed_required_gates

Creates (docs/gates.md, docs/objects.md):
- fn_dot_iu_gate_guard v2 (same trigger, still ENABLE ALWAYS): a governable gate becomes 'true'
  only through fn_iu_gate_open's own UPDATE, proved by the call stack (PG_CONTEXT) as well as
  by an 'open' transition of the same transaction; v1 checked the transition only, so the owner
  could insert an 'open' by hand and set 'true' beside it. Any INSERT of 'true' is refused;
- comments brought up to date: the two ledgers (who writes them since 0010_least_privilege, how
  rows go since 0012_ledger_seals: fn_dot_iu_ledger_retire, or maintenance bound to the
  deleting transaction), the gate snapshot table and the ledger's gate_snapshot column (what
  the readers say since 0011_gates_fail_closed, not raw values).
Grants nothing new: the guard keeps its owner and grants. Locks: none beyond the function and
comment catalog rows (no table is scanned or rewritten).
Requires: 0014_seed_required_gates.
Reverses: guard v1 and the earlier comments. Refuses nothing: no data is involved.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0015_open_by_protocol_only"
down_revision = "0014_seed_required_gates"
branch_labels = None
depends_on = None

GUARD = "public.fn_dot_iu_gate_guard()"
GUARD_COMMENTS = (
    "Trigger on dot_config (ENABLE ALWAYS): a never-flip gate holds 'false' only; a governable "
    "gate becomes 'true' only with an open transition written in the same transaction "
    "(fn_iu_gate_open). 42501 otherwise. Closing and deleting stay allowed.",
    "Trigger on dot_config (ENABLE ALWAYS): a never-flip gate holds 'false' only; a governable "
    "gate becomes 'true' only by fn_iu_gate_open's own UPDATE (its call stack), with an open "
    "transition written in the same transaction. 42501 otherwise. Closing and deleting stay "
    "allowed.",
)

# (kind, object, comment before, comment now)
COMMENTS = (
    (
        "TABLE", "public.dot_iu_command_run",
        "Append-only run ledger: one row per plan/apply/verify invocation of a catalogued "
        "command, refusals included. Written only by fn_dot_iu_command_log; UPDATE is refused, "
        "DELETE only under SET LOCAL dot_iu.ledger_maintenance = 'on'.",
        "Append-only run ledger: one row per plan/apply/verify invocation of a catalogued "
        "command, refusals included. Written by fn_dot_iu_command_log and by the gate "
        "protocol's fn_iu_gate_log_run and fn_iu_gate_record_refusal; sealed in "
        "dot_iu_ledger_seal as the tally folds it. UPDATE is refused; rows go only through "
        "fn_dot_iu_ledger_retire (whole sealed ranges) or a DELETE in a transaction that set "
        "dot_iu.ledger_maintenance to its own pg_current_xact_id().",
    ),
    (
        "TABLE", "public.iu_gate_transition",
        "Append-only transition ledger of the bounded gate protocol: one row per open, close "
        "and watchdog close of a governable gate, written only by the fn_iu_gate_* functions "
        "with its run-ledger row. UPDATE is refused, DELETE only under SET LOCAL "
        "dot_iu.ledger_maintenance = 'on'.",
        "Append-only transition ledger of the bounded gate protocol: one row per open, close "
        "and watchdog close of a governable gate, written only by the fn_iu_gate_* functions "
        "with its run-ledger row and sealed in dot_iu_ledger_seal as it is written. UPDATE is "
        "refused; rows go only through fn_dot_iu_ledger_retire or a DELETE in a transaction "
        "that set dot_iu.ledger_maintenance to its own pg_current_xact_id().",
    ),
    (
        "TABLE", "public.dot_iu_gate_snapshot",
        "One row: the current value of every gate of fn_iu_gate_classes() held in dot_config, "
        "as the jsonb object the logger records as a run's gate_snapshot. Kept by "
        "fn_dot_iu_gate_snapshot_refresh(), which tg_dot_config_gate_snapshot calls after every "
        "write to dot_config, in the writer's transaction.",
        "One row: what the gate readers say of every gate of fn_iu_gate_classes() ('true' for "
        "a gate that reads open, else 'false'), as the jsonb object the logger records as a "
        "run's gate_snapshot while clock_timestamp() < valid_until (it computes the readings "
        "afresh after). Kept by fn_dot_iu_gate_snapshot_refresh(), which the triggers on "
        "dot_config and iu_gate_transition call in the writer's transaction.",
    ),
    (
        "COLUMN", "public.dot_iu_command_run.gate_snapshot",
        "Every known gate and its value when the run was recorded.",
        "What the gate readers said of every gate when the run was recorded ('true' = read "
        "open, else 'false'); the raw dot_config values in rows written before "
        "0011_gates_fail_closed.",
    ),
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.function_file("fn_dot_iu_gate_guard.v2.sql")
    h.comment("FUNCTION", GUARD, GUARD_COMMENTS[1])
    for kind, name, _, now in COMMENTS:
        h.comment(kind, name, now)


def downgrade() -> None:
    h.begin(expected_version=revision)
    for kind, name, before, _ in reversed(COMMENTS):
        h.comment(kind, name, before)
    h.comment("FUNCTION", GUARD, GUARD_COMMENTS[0])
    h.function_file("fn_dot_iu_gate_guard.v1.sql")
