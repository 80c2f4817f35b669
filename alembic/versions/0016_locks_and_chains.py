"""Locks and chains: the logger holds the gates it reads, leases answer to their login, links stay.

Revision ID: 0016_locks_and_chains
Revises: 0015_open_by_protocol_only

Creates (docs/runtime.md, docs/seals.md, docs/objects.md):
- fn_dot_iu_command_log v7 (same signature): an applied apply row holds the gates before it
  reads them (the shared advisory lock every close takes exclusively, so a close waits for the
  applying transaction; outside READ COMMITTED the gates' rows FOR SHARE too, so a snapshot
  older than a committed close fails with 40001), so the gate rule holds for a caller that
  skipped fn_dot_iu_runtime_apply_begin; only refused rows of the package's own commands;
  evidence without a secret at any depth (keys, and URLs carrying a password); the lease it
  names asserted at the end of an apply; fewer statements for the common row;
- fn_dot_iu_gate_close_wait v1 and its triggers on dot_config (BEFORE UPDATE and DELETE of an
  open gate's row, BEFORE TRUNCATE; ENABLE ALWAYS): whatever closes a gate takes that hold
  exclusively first; fn_iu_gate_watchdog v5 tries for it and, while an applied row is in
  flight, leaves the gates for its next run instead of waiting;
- fn_iu_gate_record_refusal v3: writes its refused or failed row itself (it went through the
  logger, which from v7 takes only refused rows of the package's own commands);
- fn_dot_iu_runtime_lease_acquire, fn_dot_iu_runtime_lease_renew,
  fn_dot_iu_runtime_lease_release and fn_dot_iu_runtime_apply_begin v2: the lease answers only
  to the login that acquired it (holder and epoch are readable by every package role, so they
  alone prove nothing); apply_begin names the package's own commands one by one, so the read
  command dot_iu_gate_verify_closed is no longer taken for one;
- faster gate readers, same rule: fn_iu_gate_classes v2 (the same list, inlined by the planner:
  no SECURITY DEFINER, no SET, it reads nothing), fn_iu_gate_reads_open(p_gate) v1 (owner
  only: the one-gate path of fn_iu_gate_state's reads_open, in PL/pgSQL with cached plans),
  and every reader on it (composer, structure_ops, delivery, three_axis and vector_sync v3,
  the runtime reader v4, the two queue readers v2): each was an SQL function pinned to a
  search_path, parsed and planned again on every call;
- fn_dot_iu_ledger_seal_guard v1, now the trigger function of dot_iu_ledger_seal's two guard
  triggers (CREATE OR REPLACE TRIGGER), which fire ALWAYS: a link is never updated or deleted,
  maintenance, replica mode or not (they shared the ledgers' guard, whose maintenance switch let
  the owner cut the newest links).
Grants: the replaced functions keep theirs (CREATE OR REPLACE); the seal guard and the close
wait are trigger functions, EXECUTE revoked from PUBLIC. Locks: SHARE ROW EXCLUSIVE on
dot_iu_ledger_seal and on dot_config (the trigger changes and ENABLE ALWAYS), held until the
step commits, a few milliseconds: a fold or a gate transition that seals, and a gate write, wait
for it; the step waits at most lock_timeout for a long reader of either (substrate verify). The
run ledger's writers never wait (the logger reads dot_config without locking it).
Requires: 0015_open_by_protocol_only.
Reverses: the earlier function versions, the seal triggers back on fn_dot_iu_append_only_guard,
the close-wait triggers, the seal guard, fn_dot_iu_gate_close_wait and fn_iu_gate_reads_open
dropped. Refuses nothing: no data is involved.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0016_locks_and_chains"
down_revision = "0015_open_by_protocol_only"
branch_labels = None
depends_on = None

SEALS = "public.dot_iu_ledger_seal"
APPEND_ONLY = "public.fn_dot_iu_append_only_guard()"
SEAL_GUARD = "public.fn_dot_iu_ledger_seal_guard()"
SEAL_TRIGGERS = (
    ("tg_dot_iu_ledger_seal_append_only", "BEFORE UPDATE OR DELETE", "FOR EACH ROW"),
    ("tg_dot_iu_ledger_seal_no_truncate", "BEFORE TRUNCATE", "FOR EACH STATEMENT"),
)
SEAL_GUARD_COMMENT = (
    "Trigger: the seal chains are append-only without exception: UPDATE, DELETE and TRUNCATE of "
    "dot_iu_ledger_seal are refused, maintenance or not. SQLSTATE 55000."
)

CONFIG = "public.dot_config"
CLOSE_WAIT = "public.fn_dot_iu_gate_close_wait()"
CLOSE_WAIT_COMMENT = (
    "Trigger: whatever closes a gate (an UPDATE or DELETE of an open gate's row, a TRUNCATE of "
    "dot_config) first takes the gates' hold, advisory locks (1685025897, 0..15), exclusively: it "
    "waits for every transaction recording an applied row, which holds it shared."
)
CLOSE_WAIT_TRIGGERS = (
    ("tg_dot_config_gate_close_wait", "BEFORE UPDATE", "FOR EACH ROW WHEN (OLD.value = 'true')"),
    ("tg_dot_config_gate_close_wait_delete", "BEFORE DELETE",
     "FOR EACH ROW WHEN (OLD.value = 'true')"),
    ("tg_dot_config_gate_close_wait_truncate", "BEFORE TRUNCATE", "FOR EACH STATEMENT"),
)

READS_OPEN = "public.fn_iu_gate_reads_open(text)"
READS_OPEN_COMMENT = (
    "Whether one gate reads open now: the one-gate path of fn_iu_gate_state's reads_open (a "
    "known gate, value exactly 'true', its latest transition by transition_id an open whose "
    "window holds), with plans cached for the session. Owner only: the readers and "
    "fn_dot_iu_runtime_apply_begin call it."
)
# (reader, version before, version now): each reads its gate through fn_iu_gate_reads_open;
# comments and grants stay (CREATE OR REPLACE keeps them).
READERS = (
    ("fn_iu_composer_enabled", "v2", "v3"),
    ("fn_iu_structure_ops_enabled", "v2", "v3"),
    ("fn_iu_delivery_enabled", "v2", "v3"),
    ("fn_iu_three_axis_auto_refresh_enabled", "v2", "v3"),
    ("fn_iu_vector_sync_enabled", "v2", "v3"),
    ("fn_dot_iu_operator_runtime_enabled", "v3", "v4"),
    ("fn_queue_job_substrate_enabled", "v1", "v2"),
    ("fn_queue_dlq_replay_enabled", "v1", "v2"),
)
RECORD_REFUSAL_COMMENT = (
    "Records a refused or failed gate call as one run-ledger row of its dot_iu_gate_* command: "
    "the digest the gate function computes, evidence {sqlstate, message, gate}, never the "
    "approval or reason. The refusal audit of substrate gates and the operator runtime."
)
# (signature, version before, version now, comment before, comment now)
REPLACED = (
    (
        "public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)",
        "fn_dot_iu_command_log.v6.sql", "fn_dot_iu_command_log.v7.sql",
        "The run ledger's writer for everyone but the package's own functions; returns run_id. "
        "Records session_user and the live gate snapshot; an applied apply row only while its "
        "gates read open (55000); correlation_id and plan_run_id from the evidence; a plan-bound "
        "apply only for a fresh, unused plan of the same command, parameters and catalog row "
        "(22023, 55000, 23505); 23503 for an uncatalogued command; 22023 for a bad actor or "
        "evidence; 42501 for the package's own commands.",
        "The run ledger's writer for everyone but the package's own functions; returns run_id. "
        "Records session_user and the live gate snapshot; an applied apply row only while its "
        "gates read open, holding them until its transaction ends, so a close waits (55000; "
        "40001 for a snapshot older than a close); correlation_id and plan_run_id from the "
        "evidence; a "
        "plan-bound apply only for a fresh, unused plan of the same command, parameters and "
        "catalog row (22023, 55000, 23505); 23503 for an uncatalogued command; 22023 for a "
        "bad actor, or evidence that is too large or names a secret at any depth; "
        "42501 for any but a refused row of the package's own commands.",
    ),
    (
        "public.fn_iu_gate_record_refusal(text, text, text, text, text, text, numeric, text, "
        "text)",
        "fn_iu_gate_record_refusal.v2.sql", "fn_iu_gate_record_refusal.v3.sql",
        RECORD_REFUSAL_COMMENT,
        "Records a refused or failed gate call as one run-ledger row of its dot_iu_gate_* "
        "command, written by itself: the digest the gate function computes, evidence "
        "{sqlstate, message (a URL's password masked), gate}, never the approval or reason. "
        "The refusal audit of substrate gates.",
    ),
    (
        "public.fn_dot_iu_runtime_lease_acquire(text, text, integer)",
        "fn_dot_iu_runtime_lease_acquire.v1.sql", "fn_dot_iu_runtime_lease_acquire.v2.sql",
        "Takes a runtime lease for a holder for ttl seconds: returns its epoch (+1 for each new "
        "holder), or NULL while another holder's lease is live. Database clock.",
        "Takes a runtime lease for a holder for ttl seconds: returns its epoch (+1 for each new "
        "holder), or NULL while another holder's lease is live (the live holder is renewed "
        "only from the login that acquired it). Database clock.",
    ),
    (
        "public.fn_dot_iu_runtime_apply_begin(text, text, text, bigint)",
        "fn_dot_iu_runtime_apply_begin.v1.sql", "fn_dot_iu_runtime_apply_begin.v2.sql",
        "First statement of an apply transaction: holds the lease (current epoch) and the gates "
        "the command needs (they must read open), or raises 55000.",
        "First statement of an apply transaction: holds the lease (current epoch, acquired by "
        "this login) and the gates the command needs (they must read open), or raises 55000.",
    ),
    (
        "public.fn_dot_iu_runtime_lease_renew(text, text, bigint, integer)",
        "fn_dot_iu_runtime_lease_renew.v1.sql", "fn_dot_iu_runtime_lease_renew.v2.sql",
        "Extends a live lease, for its holder at that epoch only; false and no change for anyone "
        "else.",
        "Extends a live lease, for its holder at that epoch and the login that acquired it only; "
        "false and no change for anyone else.",
    ),
    (
        "public.fn_dot_iu_runtime_lease_release(text, text, bigint)",
        "fn_dot_iu_runtime_lease_release.v1.sql", "fn_dot_iu_runtime_lease_release.v2.sql",
        "Gives a lease back, for its holder at that epoch only; false and no change for anyone "
        "else.",
        "Gives a lease back, for its holder at that epoch and the login that acquired it only; "
        "false and no change for anyone else.",
    ),
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.function_file("fn_iu_gate_classes.v2.sql")
    h.new_function("fn_iu_gate_reads_open.v1.sql", READS_OPEN, READS_OPEN_COMMENT)
    for reader, _, now in READERS:
        h.function_file(f"{reader}.{now}.sql")
    for signature, _, now, _, comment in REPLACED:
        h.function_file(now)
        h.comment("FUNCTION", signature, comment)
    h.new_function("fn_dot_iu_ledger_seal_guard.v1.sql", SEAL_GUARD, SEAL_GUARD_COMMENT)
    for name, timing, level in SEAL_TRIGGERS:
        h.execute(f"CREATE OR REPLACE TRIGGER {name} {timing} ON {SEALS} {level} "
                  f"EXECUTE FUNCTION {SEAL_GUARD}")
        h.execute(f"ALTER TABLE {SEALS} ENABLE ALWAYS TRIGGER {name}")
    h.new_function("fn_dot_iu_gate_close_wait.v1.sql", CLOSE_WAIT, CLOSE_WAIT_COMMENT)
    for name, timing, level in CLOSE_WAIT_TRIGGERS:
        h.execute(f"CREATE TRIGGER {name} {timing} ON {CONFIG} {level} "
                  f"EXECUTE FUNCTION {CLOSE_WAIT}")
        h.execute(f"ALTER TABLE {CONFIG} ENABLE ALWAYS TRIGGER {name}")
    h.function_file("fn_iu_gate_watchdog.v5.sql")


def downgrade() -> None:
    h.begin(expected_version=revision)
    h.function_file("fn_iu_gate_watchdog.v4.sql")
    for name, _, _ in reversed(CLOSE_WAIT_TRIGGERS):
        h.execute(f"DROP TRIGGER {name} ON {CONFIG}")
    h.drop_function(CLOSE_WAIT)
    for name, timing, level in reversed(SEAL_TRIGGERS):
        h.execute(f"ALTER TABLE {SEALS} ENABLE TRIGGER {name}")
        h.execute(f"CREATE OR REPLACE TRIGGER {name} {timing} ON {SEALS} {level} "
                  f"EXECUTE FUNCTION {APPEND_ONLY}")
    h.drop_function(SEAL_GUARD)
    for signature, before, _, comment, _ in reversed(REPLACED):
        h.comment("FUNCTION", signature, comment)
        h.function_file(before)
    for reader, before, _ in reversed(READERS):
        h.function_file(f"{reader}.{before}.sql")
    h.drop_function(READS_OPEN)
    h.function_file("fn_iu_gate_classes.v1.sql")
