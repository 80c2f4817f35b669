"""Gate rule on open_gates: the logger's applied row checks its gates with one containment.

Revision ID: 0018_gate_rule_open_gates
Revises: 0017_runtime_binding

Creates (docs/objects.md, docs/gates.md):
- fn_dot_iu_gate_open_keys(p_snapshot jsonb) v1: the keys of a gate snapshot that read open
  ('true'), in byte order. IMMUTABLE; EXECUTE for the owner role only;
- dot_iu_gate_snapshot.open_gates text[], GENERATED ALWAYS AS (fn_dot_iu_gate_open_keys(snapshot))
  STORED: the gates the cached snapshot reads open, computed by the database whenever the
  snapshot is written, so no writer can set it (verify recomputes it from the snapshot);
- fn_dot_iu_command_log v8 (same signature, contract and refusals): an applied apply row's gate
  rule is one containment, `open_gates @> (runtime gate || required_gates)`, where v7 set up
  about a dozen functions on every call, and what only some rows need after the row is written
  sits behind one test. bench/results.md (items 1 and 1b) has the figures.
Grants: the new function's EXECUTE stays with the owner role (REVOKE ALL FROM PUBLIC); the
logger keeps its grants (CREATE OR REPLACE); the table's grants cover the new column. Locks:
adding a stored generated column rewrites dot_iu_gate_snapshot, one row, under ACCESS EXCLUSIVE
held until the step commits, a few milliseconds: logger calls, applies and gate writes queue
behind it. The step itself waits for every transaction that read the row, an apply in flight
included (fn_dot_iu_runtime_apply_begin reads it first and holds it until the apply commits),
at most lock_timeout: an apply running longer makes the step fail with 55P03, and it is run
again. It locks no other table, so no logger meets it in the deadlock detector. The run ledger
is not touched.
Requires: 0017_runtime_binding.
Reverses: fn_dot_iu_command_log v7 and its comment, then the column, then the function. Refuses
nothing: the column is derived from the snapshot, which stays.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0018_gate_rule_open_gates"
down_revision = "0017_runtime_binding"
branch_labels = None
depends_on = None

SNAPSHOT = "public.dot_iu_gate_snapshot"
OPEN_KEYS = "public.fn_dot_iu_gate_open_keys(jsonb)"
OPEN_KEYS_COMMENT = (
    "The keys of a gate snapshot that read open ('true'), in byte order; '{}' when none does. "
    "The expression of dot_iu_gate_snapshot.open_gates."
)
OPEN_GATES_COMMENT = (
    "The gates the snapshot reads open, in byte order: generated from snapshot by "
    "fn_dot_iu_gate_open_keys whenever snapshot is written. The logger's gate rule: an applied "
    "apply row is written from the cached snapshot only when it contains the runtime gate and "
    "every gate of the command's required_gates."
)
LOGGER = "public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)"
LOGGER_COMMENT = (
    "The run ledger's writer for everyone but the package's own functions; returns run_id. "
    "Records session_user and the live gate snapshot; an applied apply row only while its "
    "gates read open, holding them until its transaction ends, so a close waits (55000; "
    "40001 for a snapshot older than a close); correlation_id and plan_run_id from the "
    "evidence; a "
    "plan-bound apply only for a fresh, unused plan of the same command, parameters and "
    "catalog row (22023, 55000, 23505); 23503 for an uncatalogued command; 22023 for a "
    "bad actor, or evidence that is too large or names a secret at any depth; "
    "42501 for any but a refused row of the package's own commands."
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.new_function("fn_dot_iu_gate_open_keys.v1.sql", OPEN_KEYS, OPEN_KEYS_COMMENT)
    h.execute(f"ALTER TABLE {SNAPSHOT} ADD COLUMN open_gates text[] NOT NULL "
              f"GENERATED ALWAYS AS ({OPEN_KEYS.replace('(jsonb)', '(snapshot)')}) STORED")
    h.comment("COLUMN", f"{SNAPSHOT}.open_gates", OPEN_GATES_COMMENT)
    h.function_file("fn_dot_iu_command_log.v8.sql")
    h.comment("FUNCTION", LOGGER, LOGGER_COMMENT)


def downgrade() -> None:
    h.begin(expected_version=revision)
    h.function_file("fn_dot_iu_command_log.v7.sql")
    h.comment("FUNCTION", LOGGER, LOGGER_COMMENT)
    h.execute(f"ALTER TABLE {SNAPSHOT} DROP COLUMN open_gates")
    h.drop_function(OPEN_KEYS)
