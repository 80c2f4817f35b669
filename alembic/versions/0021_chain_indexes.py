"""Chain indexes: a plan -> apply -> verify chain is found through an index, not a full scan.

Revision ID: 0021_chain_indexes
Revises: 0020_plan_chain_correlation

Creates (docs/objects.md, docs/runtime.md, docs/migrations.md):
- index ix_dot_iu_command_run_correlation_id ON dot_iu_command_run (correlation_id) WHERE
  correlation_id IS NOT NULL: the rows of one correlation (what an auditor and the CLI's
  "outcome unknown" advice query, `WHERE correlation_id = 'K'`);
- index ix_dot_iu_command_run_plan_run_id ON dot_iu_command_run (plan_run_id) WHERE
  plan_run_id IS NOT NULL: the rows naming a plan (rows written before 0020 by a plan-bound
  apply without a correlation of its own are found through their plan).
Both partial: only rows the operator runtime writes carry these ids, so the indexes stay a
fraction of the ledger and a row without them costs its INSERT one predicate test each.
Grants: none (an index is its table's owner's; readers use it through their SELECT).
Locks: each index is built with CREATE INDEX CONCURRENTLY, outside the step's transaction
(revision_helpers_v2): the ledger's writers keep writing throughout. Each build waits, within
the step's lock_timeout, for the transactions writing the ledger when it began and, before it
ends, for every transaction of the database older than it (idle in transaction too). A build
that fails leaves an INVALID index and the database at 0020; `alembic upgrade` again drops it
and builds it anew. In a caller's own transaction the plain CREATE INDEX runs instead, and the
writers wait until that transaction ends.
Requires: 0020_plan_chain_correlation.
Reverses: DROP INDEX of both, in the step's transaction (strict: a missing index is drift and
fails the step): the ledger is held for the moment the catalog change takes, its writers in
flight finish first and the next ones queue behind it. Refuses nothing: an index holds no data.
"""

from __future__ import annotations

import revision_helpers_v2 as h

revision = "0021_chain_indexes"
down_revision = "0020_plan_chain_correlation"
branch_labels = None
depends_on = None

LEDGER = "public.dot_iu_command_run"
INDEXES = (
    ("ix_dot_iu_command_run_correlation_id",
     "(correlation_id) WHERE correlation_id IS NOT NULL",
     "The rows of one plan -> apply -> verify chain (WHERE correlation_id = K); partial: only "
     "rows carrying a correlation."),
    ("ix_dot_iu_command_run_plan_run_id",
     "(plan_run_id) WHERE plan_run_id IS NOT NULL",
     "The rows naming a plan (WHERE plan_run_id = P); partial: only rows naming one."),
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.concurrent_indexes(LEDGER, list(INDEXES))


def downgrade() -> None:
    h.begin(expected_version=revision)
    for name, _definition, _text in reversed(INDEXES):
        h.execute(f"DROP INDEX public.{name}")
