"""Tampering shows: both ledgers sealed in SHA-256 chains, governed retention, maintenance per transaction.

Revision ID: 0012_ledger_seals
Revises: 0011_gates_fail_closed

Creates (docs/seals.md):
- table dot_iu_ledger_seal: one chain per ledger ('run', 'transition') of links 'seal' (the
  rows whose ids lie in [first_id, last_id], their count, column count, newest created_at and
  rows_sha256) and 'retire' (a governed retirement: who, why, before when, and the seal_sha256
  of the last link it retired). Each link's seal_sha256 covers every field of the link and the
  previous link's hash; a unique index on (ledger, prev_sha256) keeps a chain from forking. It is
  append-only (fn_dot_iu_append_only_guard) and readable by the auditors;
- fn_dot_iu_ledger_chain_append v1 (the one place that hashes a link) and fn_dot_iu_ledger_seal
  v1 (hashes a range of rows: row::text with DateStyle ISO and TimeZone UTC, in id order);
- sealing as the ledgers grow: fn_dot_iu_command_run_tally_fold v3 and ..._rebuild v3 seal each
  range they move under the tally's watermark (the run ledger's writers never wait for it), and
  trigger tg_iu_gate_transition_seal (fn_dot_iu_ledger_seal_transition v1) seals each transition
  as it is written (its writers serialize);
- fn_dot_iu_ledger_retire(p_before, p_actor, p_reason) v1: removes whole sealed ranges older
  than p_before from both ledgers (transitions first, for the foreign key), records the
  retirement in both chains; the tally and the views stay exact; owner only;
- fn_dot_iu_append_only_guard v2: the maintenance switch for a raw DELETE turns on only when
  dot_iu.ledger_maintenance names the deleting transaction's own id, so a value left by ALTER
  DATABASE/ROLE ... SET no longer opens the ledgers.
Seals the existing rows: the run ledger up to the tally's watermark in links of 8,192 ids (the
rows past it are sealed by the next folds), every transition on its own. Locks: SHARE ROW
EXCLUSIVE on iu_gate_transition (new transitions wait for the step, so none escapes its seal),
the watermark row (folds skip while the step runs); the run ledger's writers never wait.
Requires: 0011_gates_fail_closed.
Reverses: refuses while the chains hold links, unless -x allow_data_loss=true (the proof that
the ledgers were not rewritten goes with them); then drops the trigger, restores the earlier
fold, rebuild and guard, and drops the retire, seal and chain functions and the table. No
CASCADE.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0012_ledger_seals"
down_revision = "0011_gates_fail_closed"
branch_labels = None
depends_on = None

SEALS = "public.dot_iu_ledger_seal"
TRANSITIONS = "public.iu_gate_transition"
WATERMARK = "public.dot_iu_command_run_tally_watermark"
CHAIN_APPEND = (
    "public.fn_dot_iu_ledger_chain_append(text, text, bigint, bigint, bigint, integer, text, "
    "timestamp with time zone, text, text, timestamp with time zone)"
)
SEAL = "public.fn_dot_iu_ledger_seal(text, bigint, bigint)"
SEAL_TRANSITION = "public.fn_dot_iu_ledger_seal_transition()"
RETIRE = "public.fn_dot_iu_ledger_retire(timestamp with time zone, text, text)"
GUARD = "public.fn_dot_iu_append_only_guard()"
FOLD = "public.fn_dot_iu_command_run_tally_fold()"
REBUILD = "public.fn_dot_iu_command_run_tally_rebuild()"
SEAL_TRIGGER = "tg_iu_gate_transition_seal"
SEAL_TABLE_TRIGGERS = (
    ("tg_dot_iu_ledger_seal_append_only", "BEFORE UPDATE OR DELETE", "FOR EACH ROW"),
    ("tg_dot_iu_ledger_seal_no_truncate", "BEFORE TRUNCATE", "FOR EACH STATEMENT"),
)
SEAL_INDEXES = (
    ("CREATE UNIQUE INDEX ux_dot_iu_ledger_seal_ledger_prev_sha256", "(ledger, prev_sha256)"),
    ("CREATE INDEX ix_dot_iu_ledger_seal_ledger_seal_id", "(ledger, seal_id DESC)"),
)
BACKLOG_LINK = 8192

# (function, version before, version now, comment before, comment now)
REPLACED = (
    (
        GUARD, "fn_dot_iu_append_only_guard.v1.sql", "fn_dot_iu_append_only_guard.v2.sql",
        "Trigger: keeps a ledger append-only (UPDATE refused; DELETE/TRUNCATE only under "
        "dot_iu.ledger_maintenance = on). SQLSTATE 55000.",
        "Trigger: keeps a ledger append-only (UPDATE refused; DELETE/TRUNCATE only when the "
        "deleting transaction set dot_iu.ledger_maintenance to its own pg_current_xact_id()). "
        "SQLSTATE 55000.",
    ),
    (
        FOLD, "fn_dot_iu_command_run_tally_fold.v2.sql", "fn_dot_iu_command_run_tally_fold.v3.sql",
        "Moves the run tally's watermark: counts the ledger rows up to the candidate an earlier "
        "fold recorded once the transactions then writing the ledger have ended, records the "
        "next candidate, returns how many rows it counted; never waits (0 when the watermark row "
        "is busy or missing, or outside READ COMMITTED).",
        "Moves the run tally's watermark: counts the ledger rows up to the candidate an earlier "
        "fold recorded once the transactions then writing the ledger have ended, seals them as "
        "one link of the run ledger's chain, records the next candidate, returns how many rows "
        "it counted; never waits (0 when the watermark row is busy or missing, or outside READ "
        "COMMITTED).",
    ),
    (
        REBUILD, "fn_dot_iu_command_run_tally_rebuild.v2.sql",
        "fn_dot_iu_command_run_tally_rebuild.v3.sql",
        "Recounts dot_iu_command_run_tally from the ledger and puts its watermark at the last "
        "run, under a SHARE lock on the ledger (writers wait); returns {runs, commands, "
        "tally_rows, runs_before, folded_through}.",
        "Recounts dot_iu_command_run_tally from the ledger, puts its watermark at the last run "
        "and seals what that moves, under a SHARE lock on the ledger (writers wait); returns "
        "{runs, commands, tally_rows, runs_before, folded_through}.",
    ),
)
SEAL_COMMENT = (
    "The seal chains of the run ledger and the transition ledger: each link seals a range of "
    "rows (action seal) or records a governed retirement (action retire), and its seal_sha256 "
    "covers the link and the previous link's hash. Append-only; substrate verify recomputes "
    "every link and every range."
)
COLUMN_COMMENTS = (
    ("rows_sha256", "seal: sha256 of the range's rows (row::text, DateStyle ISO, TimeZone UTC, "
                    "joined by newlines in id order). retire: the seal_sha256 of the last link "
                    "it retired."),
    ("column_count", "How many columns the rows had when sealed; verify pads or trims trailing "
                     "empty fields for columns added or dropped since."),
    ("newest_at", "The newest created_at of the range (retirement takes whole ranges older than "
                  "a moment); NULL for a range with no row."),
    ("seal_sha256", "sha256 of the JSON array of this link's fields and prev_sha256 "
                    "(fn_dot_iu_ledger_chain_append)."),
)
FUNCTION_COMMENTS = {
    CHAIN_APPEND: "Appends one link to a ledger's seal chain and returns its seal_id: the one "
                  "place that hashes a link. Owner only.",
    SEAL: "Seals the rows of a ledger whose ids lie in a range as one link of its chain; "
          "returns the seal_id. Owner only.",
    SEAL_TRANSITION: "Trigger: seals each transition as it is written, in the writer's "
                     "transaction.",
    RETIRE: "Governed retention: removes whole sealed ranges older than p_before from both "
            "ledgers and records the retirement in both chains; the tally and the views stay "
            "exact. Owner only.",
}


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.new_table(
        f"""
CREATE TABLE {SEALS} (
    seal_id bigint GENERATED ALWAYS AS IDENTITY,
    ledger text NOT NULL,
    action text NOT NULL,
    first_id bigint NOT NULL,
    last_id bigint NOT NULL,
    row_count bigint NOT NULL,
    column_count integer NOT NULL,
    rows_sha256 text NOT NULL,
    newest_at timestamptz,
    prev_sha256 text NOT NULL,
    seal_sha256 text NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    session_login text NOT NULL DEFAULT session_user,
    actor text,
    reason text,
    retired_before timestamptz,
    CONSTRAINT pk_dot_iu_ledger_seal PRIMARY KEY (seal_id),
    CONSTRAINT ck_dot_iu_ledger_seal_ledger CHECK (ledger IN ('run', 'transition')),
    CONSTRAINT ck_dot_iu_ledger_seal_action CHECK (action IN ('seal', 'retire')),
    CONSTRAINT ck_dot_iu_ledger_seal_range
        CHECK (first_id >= 1 AND last_id >= first_id AND row_count >= 0
               AND row_count <= last_id - first_id + 1 AND column_count > 0),
    CONSTRAINT ck_dot_iu_ledger_seal_sha256
        CHECK (rows_sha256 ~ '^[0-9a-f]{{64}}$' AND prev_sha256 ~ '^[0-9a-f]{{64}}$'
               AND seal_sha256 ~ '^[0-9a-f]{{64}}$'),
    CONSTRAINT ck_dot_iu_ledger_seal_retirement
        CHECK ((action = 'retire') = (actor IS NOT NULL AND reason IS NOT NULL
                                      AND retired_before IS NOT NULL))
)""",
        SEALS, SEAL_COMMENT, (h.AUDITOR,),
    )
    for column, text in COLUMN_COMMENTS:
        h.comment("COLUMN", f"{SEALS}.{column}", text)
    for create, columns in SEAL_INDEXES:
        h.execute(f"{create} ON {SEALS} {columns}")
    for name, timing, level in SEAL_TABLE_TRIGGERS:
        h.execute(f"CREATE TRIGGER {name} {timing} ON {SEALS} {level} EXECUTE FUNCTION {GUARD}")

    h.new_function("fn_dot_iu_ledger_chain_append.v1.sql", CHAIN_APPEND,
                   FUNCTION_COMMENTS[CHAIN_APPEND])
    h.new_function("fn_dot_iu_ledger_seal.v1.sql", SEAL, FUNCTION_COMMENTS[SEAL])
    for signature, _, now, _, comment in REPLACED:
        h.function_file(now)
        h.comment("FUNCTION", signature, comment)
    h.new_function("fn_dot_iu_ledger_retire.v1.sql", RETIRE, FUNCTION_COMMENTS[RETIRE])
    h.new_function("fn_dot_iu_ledger_seal_transition.v1.sql", SEAL_TRANSITION,
                   FUNCTION_COMMENTS[SEAL_TRANSITION])
    h.execute(
        f"CREATE TRIGGER {SEAL_TRIGGER} AFTER INSERT ON {TRANSITIONS} FOR EACH ROW "
        f"EXECUTE FUNCTION {SEAL_TRANSITION}"
    )

    h.execute(
        f"""
DO $backlog$
DECLARE
    v_through bigint;
    v_from bigint := 1;
    v_links bigint := 0;
    v_transition bigint;
    v_transitions bigint := 0;
BEGIN
    SELECT w.folded_through INTO v_through FROM {WATERMARK} AS w FOR UPDATE;
    WHILE v_from <= coalesce(v_through, 0) LOOP
        PERFORM {SEAL.split('(')[0]}('run', v_from, LEAST(v_from + {BACKLOG_LINK - 1}, v_through));
        v_from := v_from + {BACKLOG_LINK};
        v_links := v_links + 1;
    END LOOP;
    FOR v_transition IN SELECT t.transition_id FROM {TRANSITIONS} AS t ORDER BY t.transition_id LOOP
        PERFORM {SEAL.split('(')[0]}('transition', v_transition, v_transition);
        v_transitions := v_transitions + 1;
    END LOOP;
    RAISE NOTICE 'sealed the existing rows: run ledger up to run_id % in % link(s), % transition(s); chain heads: %',
        coalesce(v_through, 0), v_links, v_transitions,
        (SELECT pg_catalog.jsonb_object_agg(s.ledger, s.seal_sha256)
           FROM (SELECT DISTINCT ON (l.ledger) l.ledger, l.seal_sha256
                   FROM {SEALS} AS l ORDER BY l.ledger, l.seal_id DESC) AS s);
END
$backlog$"""
    )


def downgrade() -> None:
    h.begin(expected_version=revision)
    h.execute(
        f"""
DO $rollback$
DECLARE
    v_links bigint := (SELECT pg_catalog.count(*) FROM {SEALS});
BEGIN
    RAISE NOTICE 'pre-rollback counts: dot_iu_ledger_seal holds % link(s)', v_links;
    IF v_links > 0 AND NOT {h.allow_data_loss()} THEN
        RAISE EXCEPTION 'refusing to drop the seal chains: % link(s) prove what the ledgers held', v_links
            USING ERRCODE = '55000',
                  HINT = 'Record the chain heads (substrate verify prints them), then re-run with -x allow_data_loss=true.';
    END IF;
END
$rollback$"""
    )
    h.execute(f"DROP TRIGGER {SEAL_TRIGGER} ON {TRANSITIONS}")
    h.drop_function(SEAL_TRANSITION)
    h.drop_function(RETIRE)
    for signature, before, _, comment, _ in reversed(REPLACED):
        h.comment("FUNCTION", signature, comment)
        h.function_file(before)
    h.drop_function(SEAL)
    h.drop_function(CHAIN_APPEND)
    for name, _, _ in reversed(SEAL_TABLE_TRIGGERS):
        h.execute(f"DROP TRIGGER {name} ON {SEALS}")
    for create, _ in reversed(SEAL_INDEXES):
        h.execute(f"DROP INDEX public.{create.split()[-1]}")
    h.drop_table(SEALS, (h.AUDITOR,))
