"""Plan chain correlation: every row naming a plan of its command joins the plan's chain.

Revision ID: 0020_plan_chain_correlation
Revises: 0019_plan_check_first

Creates (docs/runtime.md, docs/objects.md):
- fn_dot_iu_command_log v9 (same signature, refusals and common path as v8): a row whose
  evidence names a plan (plan_run_id) of the same command, and no correlation_id of its own,
  records the plan's correlation_id. v8 copied it into applied rows only, so a plan-bound apply
  refused or failed before the ledger accepted its plan carried plan_run_id without the
  correlation; `correlation_id = K` now finds every row of a plan -> apply -> verify chain.
Grants: the logger keeps its grants (CREATE OR REPLACE). Locks: none beyond the function's
catalog row; no table is altered, and a logger call in flight finishes with the version it
started with.
Requires: 0019_plan_check_first.
Reverses: fn_dot_iu_command_log v8 and its comment. Refuses nothing: rows written meanwhile keep
the correlation they recorded (the ledger is append-only).
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0020_plan_chain_correlation"
down_revision = "0019_plan_check_first"
branch_labels = None
depends_on = None

LOGGER = "public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)"
LOGGER_COMMENT_V8 = (
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
LOGGER_COMMENT = (
    "The run ledger's writer for everyone but the package's own functions; returns run_id. "
    "Records session_user and the live gate snapshot; an applied apply row only while its "
    "gates read open, holding them until its transaction ends, so a close waits (55000; "
    "40001 for a snapshot older than a close); correlation_id and plan_run_id from the "
    "evidence, and a row naming a plan of its command without a correlation_id records the "
    "plan's; a plan-bound apply only for a fresh, unused plan of the same command, parameters "
    "and catalog row (22023, 55000, 23505); 23503 for an uncatalogued command; 22023 for a "
    "bad actor, or evidence that is too large or names a secret at any depth; "
    "42501 for any but a refused row of the package's own commands."
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.function_file("fn_dot_iu_command_log.v9.sql")
    h.comment("FUNCTION", LOGGER, LOGGER_COMMENT)


def downgrade() -> None:
    h.begin(expected_version=revision)
    h.function_file("fn_dot_iu_command_log.v8.sql")
    h.comment("FUNCTION", LOGGER, LOGGER_COMMENT_V8)
