"""Bounded gate protocol: the transition ledger and fn_iu_gate_open/close/verify_closed/watchdog.

Revision ID: 0006_gate_protocol
Revises: 0005_seed_gate_commands

Creates (SPEC 3.4):
- table iu_gate_transition, the append-only transition ledger (one row per open, close and
  watchdog close; each points at its run-ledger row), its index on (gate_key, created_at DESC)
  and the append-only triggers (fn_dot_iu_append_only_guard, as on the run ledger);
- fn_iu_gate_classes() v1: the one list of governable and never-flip gates the others read;
- fn_iu_gate_open(...) v1, fn_iu_gate_close(...) v1, fn_iu_gate_verify_closed(...) v1 and
  fn_iu_gate_watchdog(...) v1, each SECURITY DEFINER, search_path pinned, EXECUTE revoked from
  PUBLIC. They log through fn_dot_iu_command_log as the dot_iu_gate_* commands that
  0005_seed_gate_commands catalogued (seeded first, so a refused downgrade of this revision
  leaves fn_iu_gate_close able to log, and the open gate closable).
Requires: 0005_seed_gate_commands (dot_config, the run ledger and its logger from 0001-0003).
Reverses: pre-rollback snapshot (NOTICE: transition rows, open governable gates); refuses while
any governable gate is open ('true'), whatever -x allow_data_loss says; refuses while the
transition ledger holds rows unless -x allow_data_loss=true (both guards are SQL, rendered into
--sql output); then drops the functions, triggers, index and table, in that order, no CASCADE.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0006_gate_protocol"
down_revision = "0005_seed_gate_commands"
branch_labels = None
depends_on = None

# (version file, signature, comment), in creation order.
FUNCTIONS = (
    (
        "fn_iu_gate_classes.v1.sql",
        "public.fn_iu_gate_classes()",
        "The gates of the bounded gate protocol and their class (governable, never-flip); a key "
        "absent from it is unknown, and unknown means deny.",
    ),
    (
        "fn_iu_gate_open.v1.sql",
        "public.fn_iu_gate_open(text, text, text, text, integer)",
        "Opens one governable gate for an approved window of ttl_seconds in (0, 3600]; audits "
        "to iu_gate_transition and the run ledger. Refuses never-flip 42501, unknown 22023, no "
        "approval 23514, bad ttl or actor 22023, already open 55000.",
    ),
    (
        "fn_iu_gate_close.v1.sql",
        "public.fn_iu_gate_close(text, text, text)",
        "Forces one governable gate to ''false'' (a closed gate is a no-op that still audits); "
        "audits to iu_gate_transition and the run ledger. Refuses never-flip, unknown and blank "
        "actor with 22023.",
    ),
    (
        "fn_iu_gate_verify_closed.v1.sql",
        "public.fn_iu_gate_verify_closed(text)",
        "Reports every governable and never-flip gate (or the one named): all_safe, "
        "all_governed_closed, never_flip_intact and one entry per gate. Writes nothing.",
    ),
    (
        "fn_iu_gate_watchdog.v1.sql",
        "public.fn_iu_gate_watchdog(text)",
        "Force-closes every governable gate open without a live window (expired or orphaned) "
        "and returns them as a jsonb array; each close audits to iu_gate_transition and the run "
        "ledger.",
    ),
)
TRANSITION_INDEX = ("ix_iu_gate_transition_gate_key_created_at", "gate_key, created_at DESC")
TRANSITION_TRIGGERS = (
    ("tg_iu_gate_transition_append_only", "BEFORE UPDATE OR DELETE", "FOR EACH ROW"),
    ("tg_iu_gate_transition_no_truncate", "BEFORE TRUNCATE", "FOR EACH STATEMENT"),
)
COLUMN_COMMENTS = (
    ("action", "open (fn_iu_gate_open), close (fn_iu_gate_close) or watchdog_close "
               "(fn_iu_gate_watchdog)."),
    ("prev_value", "The dot_config value before the transition."),
    ("new_value", "The dot_config value after the transition: ''true'' for an open, ''false'' "
                  "otherwise."),
    ("approval_id", "The approval an open was granted under (required for an open, NULL "
                    "otherwise). The audit record; the run ledger holds only a digest."),
    ("expires_at", "End of an open''s window: the opening transaction''s now() + ttl_seconds. "
                   "The window is live while expires_at > clock_timestamp()."),
    ("run_id", "The run-ledger row (dot_iu_command_run) written in the same transaction."),
)

def _execute(sql: str) -> None:
    """Run one statement as raw SQL: the same bytes online and in --sql output."""
    ctx = op.get_context()
    if ctx.as_sql:
        ctx.impl.static_output(sql.strip() + ";")
    else:
        ctx.connection.exec_driver_sql(sql, execution_options={"no_parameters": True})


def _option(name: str, default: object) -> object:
    """An -x option, validated by alembic/env.py; defaults when rendering checksums."""
    return op.get_context().opts.get("substrate", {}).get(name, default)


def _begin(expected_version: str | None) -> None:
    """Open the step: its lock_timeout, then a guard on the revision the database is at."""
    lock_timeout = _option("lock_timeout", "5s")
    _execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
    found = "(SELECT pg_catalog.string_agg(version_num, ',') FROM public.alembic_version)"
    want = "NULL" if expected_version is None else f"'{expected_version}'"
    _execute(
        "DO $guard$\nBEGIN\n"
        f"  IF {found} IS DISTINCT FROM {want} THEN\n"
        f"    RAISE EXCEPTION 'substrate: this step expects the database at revision %, found %',\n"
        f"      coalesce({want}, '<base>'), coalesce({found}, '<base>')\n"
        "      USING ERRCODE = '55000';\n"
        "  END IF;\nEND\n$guard$"
    )


def _create_function(version_file: str) -> None:
    """Run one immutable function-version file from sql_functions/ (never edited once released)."""
    path = Path(__file__).resolve().parents[2] / "sql_functions" / version_file
    _execute(path.read_text().rstrip().rstrip(";"))


def upgrade() -> None:
    _begin(expected_version=down_revision)
    _execute(
        r"""
CREATE TABLE public.iu_gate_transition (
    transition_id bigint GENERATED ALWAYS AS IDENTITY,
    gate_key text NOT NULL,
    action text NOT NULL,
    prev_value text NOT NULL,
    new_value text NOT NULL,
    approval_id text,
    ttl_seconds integer,
    expires_at timestamptz,
    actor text NOT NULL,
    reason text,
    run_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT pk_iu_gate_transition PRIMARY KEY (transition_id),
    CONSTRAINT ck_iu_gate_transition_action
        CHECK (action IN ('open', 'close', 'watchdog_close')),
    CONSTRAINT ck_iu_gate_transition_actor_not_blank CHECK (actor ~ '[^[:space:]]'),
    CONSTRAINT ck_iu_gate_transition_close_has_no_window
        CHECK (action = 'open'
               OR (new_value = 'false' AND approval_id IS NULL AND ttl_seconds IS NULL
                   AND expires_at IS NULL)),
    CONSTRAINT ck_iu_gate_transition_gate_key_not_blank CHECK (gate_key ~ '[^[:space:]]'),
    CONSTRAINT ck_iu_gate_transition_open_has_approval
        CHECK (action <> 'open'
               OR (approval_id IS NOT NULL AND approval_id ~ '[^[:space:]]')),
    CONSTRAINT ck_iu_gate_transition_open_has_window
        CHECK (action <> 'open'
               OR (new_value = 'true' AND ttl_seconds IS NOT NULL AND expires_at IS NOT NULL)),
    CONSTRAINT ck_iu_gate_transition_ttl_seconds CHECK (ttl_seconds > 0 AND ttl_seconds <= 3600),
    CONSTRAINT fk_iu_gate_transition_run_id FOREIGN KEY (run_id)
        REFERENCES public.dot_iu_command_run (run_id)
)"""
    )
    name, columns = TRANSITION_INDEX
    _execute(f"CREATE INDEX {name} ON public.iu_gate_transition ({columns})")
    _execute("REVOKE ALL ON TABLE public.iu_gate_transition FROM PUBLIC")
    _execute(
        "COMMENT ON TABLE public.iu_gate_transition IS "
        "'Append-only transition ledger of the bounded gate protocol: one row per open, close "
        "and watchdog close of a governable gate, written only by the fn_iu_gate_* functions "
        "with its run-ledger row. UPDATE is refused, DELETE only under SET LOCAL "
        "dot_iu.ledger_maintenance = ''on''.'"
    )
    for column, comment in COLUMN_COMMENTS:
        _execute(f"COMMENT ON COLUMN public.iu_gate_transition.{column} IS '{comment}'")
    for name, timing, level in TRANSITION_TRIGGERS:
        _execute(
            f"CREATE TRIGGER {name} {timing} ON public.iu_gate_transition "
            f"{level} EXECUTE FUNCTION public.fn_dot_iu_append_only_guard()"
        )

    for version_file, signature, comment in FUNCTIONS:
        _create_function(version_file)
        _execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        _execute(f"COMMENT ON FUNCTION {signature} IS '{comment}'")

    _execute(
        """
DO $adopt$
DECLARE
    v_open text := (SELECT pg_catalog.string_agg(c.key, ', ' ORDER BY c.key)
                      FROM public.dot_config AS c
                      JOIN public.fn_iu_gate_classes() AS g ON g.gate_key = c.key
                     WHERE g.gate_class = 'governable' AND c.value = 'true');
BEGIN
    IF v_open IS NOT NULL THEN
        RAISE NOTICE 'gate(s) open with no window on record: %', v_open
            USING HINT = 'fn_iu_gate_watchdog closes them; open them through fn_iu_gate_open.';
    END IF;
END
$adopt$"""
    )


def downgrade() -> None:
    _begin(expected_version=revision)
    allow_data_loss = "true" if _option("allow_data_loss", False) else "false"
    _execute(
        f"""
DO $rollback$
DECLARE
    v_transitions bigint := (SELECT pg_catalog.count(*) FROM public.iu_gate_transition);
    v_open text := (SELECT pg_catalog.string_agg(c.key, ', ' ORDER BY c.key)
                      FROM public.dot_config AS c
                      JOIN public.fn_iu_gate_classes() AS g ON g.gate_key = c.key
                     WHERE g.gate_class = 'governable' AND c.value = 'true');
BEGIN
    RAISE NOTICE 'pre-rollback snapshot: iu_gate_transition % row(s), open governable gate(s): %',
        v_transitions, coalesce(v_open, 'none');
    IF v_open IS NOT NULL THEN
        RAISE EXCEPTION 'refusing to remove the gate protocol while governable gate(s) are open: %',
                v_open
            USING ERRCODE = '55000',
                  HINT = 'Close them first (fn_iu_gate_close); allow_data_loss cannot override it.';
    END IF;
    IF v_transitions > 0 AND NOT {allow_data_loss} THEN
        RAISE EXCEPTION 'refusing to drop the gate transition ledger: it holds % row(s)',
                v_transitions
            USING ERRCODE = '55000',
                  HINT = 'Export it first, then re-run with -x allow_data_loss=true.';
    END IF;
    IF v_transitions > 0 THEN
        RAISE NOTICE 'allow_data_loss=true: dropping % gate transition row(s)', v_transitions;
    END IF;
END
$rollback$"""
    )
    for _, signature, _ in reversed(FUNCTIONS):
        _execute(f"DROP FUNCTION {signature}")
    for name, _, _ in reversed(TRANSITION_TRIGGERS):
        _execute(f"DROP TRIGGER {name} ON public.iu_gate_transition")
    _execute(f"DROP INDEX public.{TRANSITION_INDEX[0]}")
    _execute("DROP TABLE public.iu_gate_transition")
