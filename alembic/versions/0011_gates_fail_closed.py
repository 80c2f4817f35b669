"""Gates end closed by themselves: readers that honour windows, and a database that refuses a flip.

Revision ID: 0011_gates_fail_closed
Revises: 0010_least_privilege

Creates (docs/gates.md):
- fn_iu_gate_state(text) v1: the one definition of whether a gate reads open (value exactly
  'true' AND its latest transition, by transition_id, an open whose window is live at
  clock_timestamp()); EXECUTE for the runtime, the gate operators and the auditors;
- fn_dot_iu_text_problem(text, integer) v1: the rules for a name an operator gives (approval
  id, actor): a letter or digit, no control, format or invisible character, a length limit;
- every gate reader on fn_iu_gate_state: fn_iu_composer_enabled, fn_iu_structure_ops_enabled,
  fn_iu_delivery_enabled, fn_iu_three_axis_auto_refresh_enabled and fn_iu_vector_sync_enabled
  v2, fn_dot_iu_operator_runtime_enabled v3, and the two gates that had none:
  fn_queue_job_substrate_enabled() and fn_queue_dlq_replay_enabled() v1;
- trigger tg_dot_config_gate_guard (fn_dot_iu_gate_guard v1, ENABLE ALWAYS): a never-flip gate
  holds 'false' and nothing else, a governable gate becomes 'true' only through fn_iu_gate_open
  (42501 otherwise, the owner's writes included); closing and deleting stay allowed;
- the gate snapshot the logger records says what the readers say: column
  dot_iu_gate_snapshot.valid_until (when a window in it ends), fn_dot_iu_gate_snapshot_refresh
  v2 and fn_dot_iu_gate_snapshot_sync v2; the statement trigger on dot_config that refreshed on
  every write (and made the watchdog wait for writers of other keys) becomes a row trigger that
  refreshes only for gate keys, plus one for TRUNCATE, and a trigger on iu_gate_transition
  refreshes when a window opens or closes;
- fn_iu_gate_open, fn_iu_gate_close and fn_iu_gate_watchdog v4, fn_iu_gate_verify_closed v2:
  the name rules (SQLSTATEs of the gate protocol kept), a reason of at most 2,000 characters,
  the latest transition by transition_id, a watchdog that skips a gate row someone holds;
- fn_dot_iu_command_log v5 and fn_iu_gate_log_run v2 (the live readings, the actor rules),
  fn_iu_gate_record_refusal v2 (the same rules decide when an actor is recorded);
- index ix_iu_gate_transition_gate_key_transition_id (the readers' lookup), replacing
  ix_iu_gate_transition_gate_key_created_at; check ck_iu_gate_transition_window_within_ttl
  (NOT VALID: enforced on new rows) that an open's window ends no later than its ttl after the
  row was written;
- view v_dot_iu_gates: the gates as the readers see them, for the three non-owner roles.
Requires: 0010_least_privilege. Notices, not refusals: gates whose state the new rules would
have refused (a never-flip gate not at 'false', a governable gate 'true' with no live window),
which the readers read closed from now on and verify reports.
Reverses: refuses while any governable gate holds 'true' (the earlier readers read the value
alone, so an expired window would read open again; close it or run the watchdog first); then
drops the view, restores every earlier function version, trigger and index, recomputes the
snapshot the old way and drops the new column, check and functions. No CASCADE.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0011_gates_fail_closed"
down_revision = "0010_least_privilege"
branch_labels = None
depends_on = None

CONFIG = "public.dot_config"
TRANSITIONS = "public.iu_gate_transition"
SNAPSHOT = "public.dot_iu_gate_snapshot"
STATE = "public.fn_iu_gate_state(text)"
TEXT_PROBLEM = "public.fn_dot_iu_text_problem(text, integer)"
GUARD = "public.fn_dot_iu_gate_guard()"
SYNC = "public.fn_dot_iu_gate_snapshot_sync()"
REFRESH = "public.fn_dot_iu_gate_snapshot_refresh()"
GATES_VIEW = "public.v_dot_iu_gates"
READER_ROLES = (h.RUNTIME, h.AUDITOR)
EVERY_ROLE = (h.RUNTIME, h.GATE_OPERATOR, h.AUDITOR)

# (function, gate, file before, file now); the comments follow the pattern of 0001/0007.
READERS = (
    ("fn_iu_composer_enabled", "iu_core.composer_enabled", "v1", "v2"),
    ("fn_iu_structure_ops_enabled", "iu_core.structure_ops_enabled", "v1", "v2"),
    ("fn_iu_delivery_enabled", "iu_core.delivery_enabled", "v1", "v2"),
    ("fn_iu_three_axis_auto_refresh_enabled", "iu_core.three_axis_auto_refresh_enabled",
     "v1", "v2"),
    ("fn_iu_vector_sync_enabled", "iu_core.vector_sync_enabled", "v1", "v2"),
    ("fn_dot_iu_operator_runtime_enabled", "iu_core.operator_runtime_enabled", "v2", "v3"),
)
NEW_READERS = (
    ("fn_queue_job_substrate_enabled", "queue.job_substrate.enabled"),
    ("fn_queue_dlq_replay_enabled", "queue.dlq.replay_enabled"),
)
# (function, version before, version now); same signatures, so grants and comments carry over.
GATE_FUNCTIONS = (
    ("fn_iu_gate_open", "v3", "v4"),
    ("fn_iu_gate_close", "v3", "v4"),
    ("fn_iu_gate_watchdog", "v3", "v4"),
    ("fn_iu_gate_verify_closed", "v1", "v2"),
)
WRITERS = (
    ("fn_dot_iu_command_log", "v4", "v5"),
    ("fn_iu_gate_log_run", "v1", "v2"),
    ("fn_iu_gate_record_refusal", "v1", "v2"),
)
INDEX_BEFORE = ("ix_iu_gate_transition_gate_key_created_at", "gate_key, created_at DESC")
INDEX_NOW = ("ix_iu_gate_transition_gate_key_transition_id", "gate_key, transition_id DESC")
WINDOW_CHECK = "ck_iu_gate_transition_window_within_ttl"
# The triggers that keep the snapshot row: 0009's, and this step's.
SNAPSHOT_TRIGGER_BEFORE = (
    "tg_dot_config_gate_snapshot",
    f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {CONFIG} FOR EACH STATEMENT",
)
SNAPSHOT_TRIGGERS_NOW = (
    ("tg_dot_config_gate_snapshot", CONFIG,
     f"AFTER INSERT OR UPDATE OR DELETE ON {CONFIG} FOR EACH ROW"),
    ("tg_dot_config_gate_snapshot_truncate", CONFIG,
     f"AFTER TRUNCATE ON {CONFIG} FOR EACH STATEMENT"),
    ("tg_iu_gate_transition_gate_snapshot", TRANSITIONS,
     f"AFTER INSERT ON {TRANSITIONS} FOR EACH STATEMENT"),
)
GUARD_TRIGGER = "tg_dot_config_gate_guard"

STATE_COMMENT = (
    "One row per gate (or the one named): its value, its latest transition by transition_id, "
    "whether that is a live window and whether the gate reads open (value exactly 'true' "
    "inside a live window), and when that reading next changes by the clock. Writes nothing."
)
TEXT_PROBLEM_COMMENT = (
    "Why a name an operator gives (actor, approval id) is not acceptable, or NULL: at most "
    "p_max_length characters, a letter or digit, no control, format or invisible character."
)
GUARD_COMMENT = (
    "Trigger on dot_config (ENABLE ALWAYS): a never-flip gate holds 'false' only; a governable "
    "gate becomes 'true' only with an open transition written in the same transaction "
    "(fn_iu_gate_open). 42501 otherwise. Closing and deleting stay allowed."
)
SYNC_COMMENT_BEFORE = (
    "Trigger: refreshes dot_iu_gate_snapshot after every write to dot_config, in the writer's "
    "transaction."
)
SYNC_COMMENT_NOW = (
    "Trigger: refreshes dot_iu_gate_snapshot in the writer's transaction when a gate key of "
    "dot_config is written (row trigger), dot_config is truncated, or a transition is recorded."
)
REFRESH_COMMENT_BEFORE = (
    "Recomputes dot_iu_gate_snapshot from dot_config (after locking its row) and returns it."
)
REFRESH_COMMENT_NOW = (
    "Recomputes dot_iu_gate_snapshot (after locking its row): every gate's reading by "
    "fn_iu_gate_state and valid_until, when the first of them changes by the clock; returns "
    "the snapshot."
)
VALID_UNTIL_COMMENT = (
    "The snapshot holds until this moment (the end of the first window in it); past it the "
    "logger computes the readings afresh. infinity while no reading can change by the clock."
)
WINDOW_CHECK_COMMENT = (
    "An open's window ends no later than ttl_seconds after the row was written (NOT VALID: "
    "rows before 0011_gates_fail_closed are not checked; verify reports any that fail)."
)
VIEW_COMMENT = (
    "One row per gate as the gate readers see it: class, value, whether it reads open, its "
    "latest window, whether it is orphaned. The way non-owner roles read the gates."
)


def _reader_comment(gate: str, live: bool) -> str:
    if live:
        return (f"Fail-closed reader of gate {gate}: true only for the exact value 'true' inside "
                "a live window (fn_iu_gate_state: the latest transition by transition_id is an "
                "open whose window holds now).")
    return f"Fail-closed reader of gate {gate}: true only for the exact value 'true'."


RUNTIME_READER_COMMENT_BEFORE = (
    "Fail-closed reader of gate iu_core.operator_runtime_enabled: true only for the exact "
    "value 'true' inside a live window (its latest iu_gate_transition is an open whose "
    "expires_at is ahead of clock_timestamp())."
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.new_function("fn_dot_iu_text_problem.v1.sql", TEXT_PROBLEM, TEXT_PROBLEM_COMMENT)
    h.new_function("fn_iu_gate_state.v1.sql", STATE, STATE_COMMENT, EVERY_ROLE)

    name, columns = INDEX_NOW
    h.execute(f"CREATE INDEX {name} ON {TRANSITIONS} ({columns})")
    h.execute(f"DROP INDEX public.{INDEX_BEFORE[0]}")
    h.execute(
        f"ALTER TABLE {TRANSITIONS} ADD CONSTRAINT {WINDOW_CHECK} CHECK (action <> 'open' "
        "OR expires_at <= created_at + pg_catalog.make_interval(secs => ttl_seconds)) NOT VALID"
    )
    h.comment("CONSTRAINT", f"{WINDOW_CHECK} ON {TRANSITIONS}", WINDOW_CHECK_COMMENT)

    for reader, gate, _, now in READERS:
        h.function_file(f"{reader}.{now}.sql")
        h.comment("FUNCTION", f"public.{reader}()", _reader_comment(gate, live=True))
    for reader, gate in NEW_READERS:
        h.new_function(f"{reader}.v1.sql", f"public.{reader}()",
                       _reader_comment(gate, live=True), READER_ROLES)

    h.execute(f"ALTER TABLE {SNAPSHOT} ADD COLUMN valid_until timestamptz NOT NULL "
              "DEFAULT 'infinity'")
    h.comment("COLUMN", f"{SNAPSHOT}.valid_until", VALID_UNTIL_COMMENT)
    h.function_file("fn_dot_iu_gate_snapshot_refresh.v2.sql")
    h.comment("FUNCTION", REFRESH, REFRESH_COMMENT_NOW)
    h.function_file("fn_dot_iu_gate_snapshot_sync.v2.sql")
    h.comment("FUNCTION", SYNC, SYNC_COMMENT_NOW)
    h.execute(f"DROP TRIGGER {SNAPSHOT_TRIGGER_BEFORE[0]} ON {CONFIG}")
    for trigger, _, timing in SNAPSHOT_TRIGGERS_NOW:
        h.execute(f"CREATE TRIGGER {trigger} {timing} EXECUTE FUNCTION {SYNC}")

    for name, _, now in GATE_FUNCTIONS:
        h.function_file(f"{name}.{now}.sql")
    for name, _, now in WRITERS:
        h.function_file(f"{name}.{now}.sql")

    h.new_function("fn_dot_iu_gate_guard.v1.sql", GUARD, GUARD_COMMENT)
    h.execute(
        f"CREATE TRIGGER {GUARD_TRIGGER} AFTER INSERT OR UPDATE ON {CONFIG} FOR EACH ROW "
        f"WHEN (NEW.value IS DISTINCT FROM 'false') EXECUTE FUNCTION {GUARD}"
    )
    h.execute(f"ALTER TABLE {CONFIG} ENABLE ALWAYS TRIGGER {GUARD_TRIGGER}")

    h.new_view("v_dot_iu_gates.v1.sql", GATES_VIEW, VIEW_COMMENT, EVERY_ROLE)

    h.execute(
        f"""
DO $readings$
DECLARE
    v_broken text := (SELECT pg_catalog.string_agg(s.gate_key, ', ' ORDER BY s.gate_key)
                        FROM public.fn_iu_gate_state(NULL) AS s
                       WHERE s.gate_class = 'never-flip' AND s.value IS DISTINCT FROM 'false');
    v_windowless text := (SELECT pg_catalog.string_agg(s.gate_key, ', ' ORDER BY s.gate_key)
                            FROM public.fn_iu_gate_state(NULL) AS s
                           WHERE s.gate_class = 'governable' AND s.value = 'true'
                             AND NOT s.reads_open);
BEGIN
    IF v_broken IS NOT NULL THEN
        RAISE NOTICE 'never-flip gate(s) not at ''false'': %; they read closed, and verify reports them',
            v_broken;
    END IF;
    IF v_windowless IS NOT NULL THEN
        RAISE NOTICE 'gate(s) ''true'' with no live window: %; they read closed from now on',
            v_windowless
            USING HINT = 'fn_iu_gate_watchdog (substrate gates watchdog) closes them.';
    END IF;
    RAISE NOTICE 'dot_iu_gate_snapshot: %', {REFRESH};
END
$readings$"""
    )


def downgrade() -> None:
    h.begin(expected_version=revision)
    h.execute(
        f"""
DO $rollback$
DECLARE
    v_open text := (SELECT pg_catalog.string_agg(c.key, ', ' ORDER BY c.key)
                      FROM {CONFIG} AS c
                      JOIN public.fn_iu_gate_classes() AS g ON g.gate_key = c.key
                     WHERE g.gate_class = 'governable' AND c.value = 'true');
BEGIN
    IF v_open IS NOT NULL THEN
        RAISE EXCEPTION 'refusing to restore readers that read the value alone while gate(s) hold ''true'': %',
                v_open
            USING ERRCODE = '55000',
                  HINT = 'An expired window would read open again: close the gates (fn_iu_gate_close) or run fn_iu_gate_watchdog first.';
    END IF;
END
$rollback$"""
    )
    h.drop_view(GATES_VIEW, EVERY_ROLE)

    h.execute(f"DROP TRIGGER {GUARD_TRIGGER} ON {CONFIG}")
    h.drop_function(GUARD)

    for name, before, _ in reversed(WRITERS):
        h.function_file(f"{name}.{before}.sql")
    for name, before, _ in reversed(GATE_FUNCTIONS):
        h.function_file(f"{name}.{before}.sql")

    for trigger, table, _ in reversed(SNAPSHOT_TRIGGERS_NOW):
        h.execute(f"DROP TRIGGER {trigger} ON {table}")
    trigger, timing = SNAPSHOT_TRIGGER_BEFORE
    h.execute(f"CREATE TRIGGER {trigger} {timing} EXECUTE FUNCTION {SYNC}")
    h.comment("FUNCTION", SYNC, SYNC_COMMENT_BEFORE)
    h.function_file("fn_dot_iu_gate_snapshot_sync.v1.sql")
    h.comment("FUNCTION", REFRESH, REFRESH_COMMENT_BEFORE)
    h.function_file("fn_dot_iu_gate_snapshot_refresh.v1.sql")
    h.execute(
        f"""
DO $snapshot$
BEGIN
    RAISE NOTICE 'dot_iu_gate_snapshot (raw values again): %', {REFRESH};
END
$snapshot$"""
    )
    h.execute(f"ALTER TABLE {SNAPSHOT} DROP COLUMN valid_until")

    for reader, _ in reversed(NEW_READERS):
        h.drop_function(f"public.{reader}()", READER_ROLES)
    for reader, gate, before, _ in reversed(READERS):
        comment = (RUNTIME_READER_COMMENT_BEFORE if reader == "fn_dot_iu_operator_runtime_enabled"
                   else _reader_comment(gate, live=False))
        h.comment("FUNCTION", f"public.{reader}()", comment)
        h.function_file(f"{reader}.{before}.sql")

    h.execute(f"ALTER TABLE {TRANSITIONS} DROP CONSTRAINT {WINDOW_CHECK}")
    name, columns = INDEX_BEFORE
    h.execute(f"CREATE INDEX {name} ON {TRANSITIONS} ({columns})")
    h.execute(f"DROP INDEX public.{INDEX_NOW[0]}")

    h.drop_function(STATE, EVERY_ROLE)
    h.drop_function(TEXT_PROBLEM)
