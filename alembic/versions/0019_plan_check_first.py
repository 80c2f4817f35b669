"""Plan check first: a plan-bound apply is refused before any command SQL runs.

Revision ID: 0019_plan_check_first
Revises: 0018_gate_rule_open_gates

Creates (docs/runtime.md, docs/objects.md):
- fn_dot_iu_command_plan_check(p_plan_run_id, p_command_name, p_params_digest) v1: the
  logger's checks of a plan-bound apply, made on their own: a 'planned' plan of this command
  with this params_digest (22023), younger than one hour (55000), made against the same catalog
  row (55000), not used by an apply (23505); returns the plan's correlation id. The operator
  runtime calls it first in a plan-bound apply's transaction, so a plan the ledger would
  refuse never reaches the command's statement. The logger keeps making the same checks when
  the applied row is written (for every caller, and for the race of two applies of one plan,
  which this function does not settle). SECURITY DEFINER (it reads the ledger), STABLE.
Grants: EXECUTE to dot_iu_runtime only (REVOKE ALL FROM PUBLIC). Locks: none; no table is
altered.
Requires: 0018_gate_rule_open_gates.
Reverses: drops the function. Refuses nothing: no data is involved. A runtime that calls it
needs this revision (it names the function in a plan-bound apply only).
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0019_plan_check_first"
down_revision = "0018_gate_rule_open_gates"
branch_labels = None
depends_on = None

PLAN_CHECK = "public.fn_dot_iu_command_plan_check(bigint, text, text)"
PLAN_CHECK_COMMENT = (
    "May this plan be applied now: a 'planned' plan of the command with this params_digest "
    "(22023), younger than one hour and made against the same catalog row (55000), not used "
    "by an apply (23505). Returns the plan's correlation id. The operator runtime calls it "
    "before a plan-bound apply's statement; fn_dot_iu_command_log makes the same checks."
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.new_function("fn_dot_iu_command_plan_check.v1.sql", PLAN_CHECK, PLAN_CHECK_COMMENT,
                   (h.RUNTIME,))


def downgrade() -> None:
    h.begin(expected_version=revision)
    h.drop_function(PLAN_CHECK, (h.RUNTIME,))
