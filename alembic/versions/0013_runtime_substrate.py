"""The operator runtime's substrate: required gates, plan-bound applies, correlation, one applier.

Revision ID: 0013_runtime_substrate
Revises: 0012_ledger_seals

Creates (docs/runtime.md):
- column dot_iu_command_catalog.required_gates text[] (default '{}'): the governable gates a
  command needs open to APPLY, besides the runtime gate; projected from the registry's
  GATE_BY_FUNCTION by a generated seed revision (0014); checked to name governable gates only;
- columns dot_iu_command_run.correlation_id uuid (one id shared by every row of one plan ->
  apply -> verify chain) and plan_run_id bigint (the plan an apply was bound to); nullable, no
  default: no row is rewritten, earlier rows keep NULL, and their seals still hold;
- table dot_iu_command_plan_use: one row per consumed plan (primary key plan_run_id), written
  by the logger with the applied row, so a plan is applied at most once and of two racing
  applies exactly one commits;
- table dot_iu_runtime_lease and fn_dot_iu_runtime_lease_acquire, _renew, _release (the
  runtime role) and _break (the gate operators; audited in the run ledger), view
  v_dot_iu_runtime_lease: one applier at a time, with a fencing epoch and the database's clock;
- fn_dot_iu_runtime_apply_begin v1: the first statement of an apply transaction: holds the
  lease (its epoch must be current) and the gates it needs (they must read open);
- fn_dot_iu_command_log v6 (same signature): the gate rule for applied rows, correlation and
  plan ids from the evidence, plan-bound validation and consumption, catalog_md5 on plans;
- fn_iu_gate_log_run v3: also writes the lease break's row.
Locks: ACCESS EXCLUSIVE on the ledger first (the order its writers take it in, so a logger in
flight never deadlocks with the step), then on the catalog, while their columns are added
(catalog changes only, no scan, no rewrite), held until the step commits.
Requires: 0012_ledger_seals.
Reverses: refuses while a lease is held, and, unless -x allow_data_loss=true, while any ledger
row records a correlation or a plan, a plan was consumed, or a catalog row names required gates
(0014's downgrade clears those it set); then restores logger v5 and fn_iu_gate_log_run v2 and
drops the new functions, view, tables and columns, in reverse order. No CASCADE.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0013_runtime_substrate"
down_revision = "0012_ledger_seals"
branch_labels = None
depends_on = None

CATALOG = "public.dot_iu_command_catalog"
LEDGER = "public.dot_iu_command_run"
PLAN_USE = "public.dot_iu_command_plan_use"
LEASE = "public.dot_iu_runtime_lease"
LEASE_VIEW = "public.v_dot_iu_runtime_lease"
GUARD = "public.fn_dot_iu_append_only_guard()"
GOVERNABLE = (
    "iu_core.composer_enabled", "iu_core.structure_ops_enabled", "iu_core.delivery_enabled",
    "iu_core.three_axis_auto_refresh_enabled", "queue.job_substrate.enabled",
    "queue.dlq.replay_enabled", "iu_core.operator_runtime_enabled",
)
REQUIRED_GATES_CHECK = "ck_dot_iu_command_catalog_required_gates"
PLAN_USE_TRIGGERS = (
    ("tg_dot_iu_command_plan_use_append_only", "BEFORE UPDATE OR DELETE", "FOR EACH ROW"),
    ("tg_dot_iu_command_plan_use_no_truncate", "BEFORE TRUNCATE", "FOR EACH STATEMENT"),
)
# (file, signature, comment, roles with EXECUTE)
FUNCTIONS = (
    ("fn_dot_iu_runtime_lease_acquire.v1.sql",
     "public.fn_dot_iu_runtime_lease_acquire(text, text, integer)",
     "Takes a runtime lease for a holder for ttl seconds: returns its epoch (+1 for each new "
     "holder), or NULL while another holder's lease is live. Database clock.", (h.RUNTIME,)),
    ("fn_dot_iu_runtime_lease_renew.v1.sql",
     "public.fn_dot_iu_runtime_lease_renew(text, text, bigint, integer)",
     "Extends a live lease, for its holder at that epoch only; false and no change for anyone "
     "else.", (h.RUNTIME,)),
    ("fn_dot_iu_runtime_lease_release.v1.sql",
     "public.fn_dot_iu_runtime_lease_release(text, text, bigint)",
     "Gives a lease back, for its holder at that epoch only; false and no change for anyone "
     "else.", (h.RUNTIME,)),
    ("fn_dot_iu_runtime_lease_break.v1.sql",
     "public.fn_dot_iu_runtime_lease_break(text, text, text)",
     "An operator frees a lease from whoever holds it; audited as a dot_iu_runtime_lease_break "
     "row in the run ledger. Waits for an apply in flight.", (h.GATE_OPERATOR,)),
    ("fn_dot_iu_runtime_apply_begin.v1.sql",
     "public.fn_dot_iu_runtime_apply_begin(text, text, text, bigint)",
     "First statement of an apply transaction: holds the lease (current epoch) and the gates "
     "the command needs (they must read open), or raises 55000.", (h.RUNTIME,)),
)
LOG = "public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)"
LOG_COMMENT_V4 = (
    "The run ledger's writer for everyone but the gate protocol; returns run_id. Ungated; "
    "records session_user and the live gate snapshot (p_gate_snapshot is ignored); raises 23503 "
    "for a command absent from a non-empty catalog, 22023 for an actor over 200 characters or "
    "evidence that is not a JSON object of at most 4 KiB, 42501 for a dot_iu_gate_* row that is "
    "not refused or failed."
)
LOG_COMMENT_V6 = (
    "The run ledger's writer for everyone but the package's own functions; returns run_id. "
    "Records session_user and the live gate snapshot; an applied apply row only while its gates "
    "read open (55000); correlation_id and plan_run_id from the evidence; a plan-bound apply "
    "only for a fresh, unused plan of the same command, parameters and catalog row (22023, "
    "55000, 23505); 23503 for an uncatalogued command; 22023 for a bad actor or evidence; 42501 "
    "for the package's own commands."
)
LOG_RUN = "public.fn_iu_gate_log_run(text, text, text, jsonb)"
LOG_RUN_COMMENT_V1 = (
    "The gate protocol's own run-ledger writer: the applied row of an open, close or watchdog "
    "close. EXECUTE for the owner only, so only the fn_iu_gate_* functions reach it."
)
LOG_RUN_COMMENT_V3 = (
    "The run-ledger writer of the package's own functions: the applied row of a gate open, "
    "close or watchdog close, or of a lease break. EXECUTE for the owner only."
)
COLUMN_COMMENTS = (
    (f"{CATALOG}.required_gates",
     "The governable gates a command needs open to APPLY, besides "
     "iu_core.operator_runtime_enabled; from the registry's GATE_BY_FUNCTION (seed revisions)."),
    (f"{LEDGER}.correlation_id",
     "One id shared by every row of one plan -> apply -> verify chain; from the evidence key "
     "correlation_id (an apply bound to a plan inherits the plan's). NULL before "
     "0013_runtime_substrate."),
    (f"{LEDGER}.plan_run_id",
     "The plan an apply was bound to (evidence key plan_run_id); the plan is consumed by the "
     "applied row (dot_iu_command_plan_use)."),
)
PLAN_USE_COMMENT = (
    "One row per consumed plan: the applied row that used it. Its primary key lets a plan be "
    "applied at most once (of two racing applies, exactly one commits). Written by the logger "
    "with the applied row; append-only."
)
LEASE_COMMENT = (
    "The operator runtime's leases: one applier at a time. A holder, a fencing epoch (+1 for "
    "each new holder), times from the database's clock. Written only by the lease functions."
)
LEASE_VIEW_COMMENT = (
    "Every runtime lease and whether it is held now (a holder, not released or broken, not "
    "expired)."
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    # The run ledger first, as its writers take it (the INSERT locks its target before the
    # catalog it reads): a logger in flight then never holds the ledger while it waits for a
    # table this step already holds, which would deadlock (docs/migrations.md, "Locks").
    h.execute("LOCK TABLE public.dot_iu_command_run IN ACCESS EXCLUSIVE MODE")
    governable = ", ".join(h.literal(gate) for gate in GOVERNABLE)
    h.execute(f"ALTER TABLE {CATALOG} ADD COLUMN required_gates text[] NOT NULL DEFAULT '{{}}'")
    h.execute(
        f"ALTER TABLE {CATALOG} ADD CONSTRAINT {REQUIRED_GATES_CHECK} CHECK "
        f"(required_gates <@ ARRAY[{governable}]::text[] "
        "AND pg_catalog.array_position(required_gates, NULL) IS NULL)"
    )
    h.execute(f"ALTER TABLE {LEDGER} ADD COLUMN correlation_id uuid")
    h.execute(f"ALTER TABLE {LEDGER} ADD COLUMN plan_run_id bigint")
    for column, text in COLUMN_COMMENTS:
        h.comment("COLUMN", column, text)

    h.new_table(
        f"""
CREATE TABLE {PLAN_USE} (
    plan_run_id bigint NOT NULL,
    applied_run_id bigint NOT NULL,
    used_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    session_login text NOT NULL DEFAULT session_user,
    CONSTRAINT pk_dot_iu_command_plan_use PRIMARY KEY (plan_run_id)
)""",
        PLAN_USE, PLAN_USE_COMMENT, (h.AUDITOR,),
    )
    for name, timing, level in PLAN_USE_TRIGGERS:
        h.execute(f"CREATE TRIGGER {name} {timing} ON {PLAN_USE} {level} EXECUTE FUNCTION {GUARD}")

    h.new_table(
        f"""
CREATE TABLE {LEASE} (
    lease_name text NOT NULL,
    holder text,
    epoch bigint NOT NULL DEFAULT 0,
    acquired_at timestamptz,
    renewed_at timestamptz,
    expires_at timestamptz,
    released_at timestamptz,
    session_login text,
    CONSTRAINT pk_dot_iu_runtime_lease PRIMARY KEY (lease_name),
    CONSTRAINT ck_dot_iu_runtime_lease_name CHECK (lease_name ~ '^[a-z][a-z0-9_]{{0,62}}$'),
    CONSTRAINT ck_dot_iu_runtime_lease_taken
        CHECK ((holder IS NULL) = (epoch = 0)
               AND (holder IS NULL) = (expires_at IS NULL)
               AND (holder IS NULL) = (acquired_at IS NULL))
)""",
        LEASE, LEASE_COMMENT, (h.AUDITOR,),
    )
    for version_file, signature, comment, roles in FUNCTIONS:
        h.new_function(version_file, signature, comment, roles)
    h.new_view("v_dot_iu_runtime_lease.v1.sql", LEASE_VIEW, LEASE_VIEW_COMMENT,
               (h.RUNTIME, h.GATE_OPERATOR, h.AUDITOR))

    h.function_file("fn_iu_gate_log_run.v3.sql")
    h.comment("FUNCTION", LOG_RUN, LOG_RUN_COMMENT_V3)
    h.function_file("fn_dot_iu_command_log.v6.sql")
    h.comment("FUNCTION", LOG, LOG_COMMENT_V6)


def downgrade() -> None:
    h.begin(expected_version=revision)
    # The run ledger first, as its writers take it (the INSERT locks its target before the
    # catalog it reads): a logger in flight then never holds the ledger while it waits for a
    # table this step already holds, which would deadlock (docs/migrations.md, "Locks").
    h.execute("LOCK TABLE public.dot_iu_command_run IN ACCESS EXCLUSIVE MODE")
    h.execute(
        f"""
DO $rollback$
DECLARE
    v_held text := (SELECT pg_catalog.string_agg(l.lease_name, ', ' ORDER BY l.lease_name)
                      FROM {LEASE} AS l
                     WHERE l.holder IS NOT NULL AND l.released_at IS NULL
                       AND l.expires_at > pg_catalog.clock_timestamp());
    v_runs bigint := (SELECT pg_catalog.count(*) FROM {LEDGER} AS r
                       WHERE r.correlation_id IS NOT NULL OR r.plan_run_id IS NOT NULL);
    v_plans bigint := (SELECT pg_catalog.count(*) FROM {PLAN_USE});
    v_gated bigint := (SELECT pg_catalog.count(*) FROM {CATALOG} AS c
                        WHERE c.required_gates <> '{{}}');
BEGIN
    RAISE NOTICE 'pre-rollback counts: % run(s) with a correlation or plan, % consumed plan(s), % catalog row(s) naming required gates',
        v_runs, v_plans, v_gated;
    IF v_held IS NOT NULL THEN
        RAISE EXCEPTION 'refusing to drop the runtime lease while it is held: %', v_held
            USING ERRCODE = '55000',
                  HINT = 'Let the runtime release it, or break it (fn_dot_iu_runtime_lease_break); allow_data_loss cannot override it.';
    END IF;
    IF v_runs + v_plans + v_gated > 0 AND NOT {h.allow_data_loss()} THEN
        RAISE EXCEPTION 'refusing to drop what the runtime recorded: % run(s), % consumed plan(s), % gated catalog row(s)',
                v_runs, v_plans, v_gated
            USING ERRCODE = '55000',
                  HINT = 'Export it first, then re-run with -x allow_data_loss=true.';
    END IF;
END
$rollback$"""
    )
    h.comment("FUNCTION", LOG, LOG_COMMENT_V4)
    h.function_file("fn_dot_iu_command_log.v5.sql")
    h.comment("FUNCTION", LOG_RUN, LOG_RUN_COMMENT_V1)
    h.function_file("fn_iu_gate_log_run.v2.sql")

    h.drop_view(LEASE_VIEW, (h.RUNTIME, h.GATE_OPERATOR, h.AUDITOR))
    for _, signature, _, roles in reversed(FUNCTIONS):
        h.drop_function(signature, roles)
    h.drop_table(LEASE, (h.AUDITOR,))
    for name, _, _ in reversed(PLAN_USE_TRIGGERS):
        h.execute(f"DROP TRIGGER {name} ON {PLAN_USE}")
    h.drop_table(PLAN_USE, (h.AUDITOR,))

    h.execute(f"ALTER TABLE {LEDGER} DROP COLUMN plan_run_id")
    h.execute(f"ALTER TABLE {LEDGER} DROP COLUMN correlation_id")
    h.execute(f"ALTER TABLE {CATALOG} DROP CONSTRAINT {REQUIRED_GATES_CHECK}")
    h.execute(f"ALTER TABLE {CATALOG} DROP COLUMN required_gates")
