-- fn_dot_iu_command_log v9: the run ledger's writer for everyone but the package's own protocol
-- functions (docs/objects.md, "The run ledger"; docs/runtime.md). Same signature, refusals and
-- common path as v8; one change, to what a row records: a row whose evidence names a plan
-- (plan_run_id) of the same command and no correlation_id of its own records the plan's
-- correlation_id. v8 copied it into applied rows only, so a plan-bound apply refused or failed
-- before the ledger accepted its plan (a used plan, other parameters, a shut gate, an executor
-- fault) carried plan_run_id but no correlation, and an auditor had to follow plan_run_id to
-- find it; now `correlation_id = K` finds every row of the chain. A correlation_id the evidence
-- names is kept as it is (an applied row's must still be its plan's, 22023). The plan is the
-- one v8 already read; the common row (empty evidence) does nothing more.
-- v8's description follows.
-- (v8) fn_dot_iu_command_log v8: the run ledger's writer for everyone but the package's own protocol
-- functions (docs/objects.md, "The run ledger"; docs/runtime.md). Same signature, contract and
-- refusals as v7 (its rules: the gate hold, the gate rule, the package's own commands, evidence
-- without secrets, the lease asserted, plan-bound applies); the common row costs less:
--   * the gate rule is one array containment: the runtime gate and the catalog row's
--     required_gates are all in dot_iu_gate_snapshot.open_gates, the keys the cached snapshot
--     reads 'true', a column generated from the snapshot by fn_dot_iu_gate_open_keys (so it
--     cannot disagree with it). v7 looked each gate up in the JSON, through a CASE on how many
--     there were: about a dozen functions to set up on every call for the same answer;
--   * what only some rows need after the row is written (finding out why nothing was written,
--     the gates' rows FOR SHARE outside READ COMMITTED, the plan's use, the tally fold) sits
--     behind one test the common row passes, where v7 tested for each in turn (an applied row
--     still reads transaction_isolation in it, as v7 did).
-- Measured in instructions per call by bench item 1b, in time by item 1 (bench/results.md).
-- Unchanged from v7: session_login = session_user; the live gate snapshot (p_gate_snapshot
-- ignored); actor and evidence limits; correlation and plan ids from the evidence; fail-closed
-- on vocabulary (23503); a tally fold on about one run in 1024.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_log(
    p_command_name text,
    p_run_mode text,
    p_run_status text,
    p_actor text,
    p_params_digest text,
    p_evidence jsonb DEFAULT '{}'::jsonb,
    p_gate_snapshot jsonb DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_applied boolean := p_run_mode = 'apply' AND p_run_status = 'applied';
    v_run_id bigint;
    v_snapshot jsonb;
    v_mutating boolean;
    v_required text[];
    v_catalog_md5 text;
    v_gate text;
    v_shut text;
    v_correlation_id uuid;
    v_plan_run_id bigint;
    v_plan record;
BEGIN
    -- The common row (a printable ASCII actor, empty evidence, a command not the package's own)
    -- passes one test; anything else meets each rule in full. Printable ASCII with a letter or
    -- digit and at most 200 characters is a good actor; anything else meets the full rule
    -- (fn_dot_iu_text_problem's). A NULL or blank actor is left to the table's constraints
    -- (23502, 23514), as before v7.
    IF pg_catalog.length(p_actor) > 200 OR p_actor !~ '^[ -~]*[0-9A-Za-z][ -~]*$'
       OR p_evidence IS DISTINCT FROM '{}'::jsonb
       OR p_command_name IN ('dot_iu_gate_open', 'dot_iu_gate_close', 'dot_iu_gate_watchdog', 'dot_iu_runtime_lease_break') THEN
        IF pg_catalog.length(p_actor) > 200 OR p_actor !~ '^[ -~]*[0-9A-Za-z][ -~]*$' THEN
            IF p_actor ~ '[^[:space:]]'
               AND (pg_catalog.length(p_actor) > 200
                    OR p_actor ~ '[\u0001-\u001f\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a\U000e0000-\U000e0fff]'
                    OR p_actor !~ '[0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u1fff\u2070-\u218f\u2c00-\u2dff\u2e80-\uffef\U00010000-\U0010ffff]') THEN
                RAISE EXCEPTION 'actor %', public.fn_dot_iu_text_problem(p_actor, 200)
                    USING ERRCODE = '22023';
            END IF;
        END IF;
        IF p_command_name IN ('dot_iu_gate_open', 'dot_iu_gate_close', 'dot_iu_gate_watchdog', 'dot_iu_runtime_lease_break')
           AND p_run_status IS DISTINCT FROM 'refused' THEN
            RAISE EXCEPTION '% rows of % are written only by the package''s own functions', p_run_status, p_command_name
                USING ERRCODE = '42501',
                      HINT = 'Open, close and watch gates through fn_iu_gate_open/close/watchdog (substrate gates); break a lease with fn_dot_iu_runtime_lease_break.';
        END IF;
        -- Everything evidence can carry; an empty evidence object has nothing to check.
        IF p_evidence IS DISTINCT FROM '{}'::jsonb THEN
            IF pg_catalog.jsonb_typeof(p_evidence) <> 'object'
               OR pg_catalog.octet_length(p_evidence::text) > 4096 THEN
                RAISE EXCEPTION 'evidence must be a JSON object of at most 4096 bytes of text, got a % of % bytes',
                        pg_catalog.jsonb_typeof(p_evidence), pg_catalog.octet_length(p_evidence::text)
                    USING ERRCODE = '22023',
                          HINT = 'Evidence holds structural facts (ids, counts, SQLSTATEs), never values or documents.';
            END IF;
            IF pg_catalog.jsonb_path_exists(p_evidence,
                   'lax $.** ? ((@.type() == "object" && exists (@.keyvalue() ? (@.key like_regex "(passw|secret|token|api.?key|credential|authori[sz]ation|private.?key)" flag "i")))'
                   ' || (@.type() == "string" && @ like_regex "[a-z][a-z0-9+.-]*://[^/@:[:space:]]+:[^/@[:space:]]*@" flag "i"))') THEN
                RAISE EXCEPTION 'evidence names a secret (a key like password or token, or a URL with a password), at some depth: secrets never enter the ledger'
                    USING ERRCODE = '22023',
                          HINT = 'Evidence holds structural facts (ids, counts, SQLSTATEs), never credentials.';
            END IF;
            IF p_evidence ? 'correlation_id' THEN
                IF p_evidence ->> 'correlation_id' !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
                    RAISE EXCEPTION 'evidence correlation_id must be a uuid' USING ERRCODE = '22023';
                END IF;
                v_correlation_id := (p_evidence ->> 'correlation_id')::uuid;
            END IF;
            IF p_evidence ? 'plan_run_id' THEN
                IF p_run_mode IS DISTINCT FROM 'apply' OR p_evidence ->> 'plan_run_id' !~ '^[0-9]{1,18}$' THEN
                    RAISE EXCEPTION 'evidence plan_run_id must be a run id, and only an apply names a plan'
                        USING ERRCODE = '22023';
                END IF;
                SELECT r.run_id, r.command_name, r.run_mode, r.run_status, r.params_digest, r.created_at,
                       r.correlation_id, r.evidence ->> 'catalog_md5' AS catalog_md5
                  INTO v_plan
                  FROM public.dot_iu_command_run AS r
                 WHERE r.run_id = (p_evidence ->> 'plan_run_id')::bigint;
                v_plan_run_id := v_plan.run_id;
                -- Any row naming a plan of its own command joins the plan's chain, unless its
                -- evidence names a correlation of its own.
                IF v_correlation_id IS NULL AND v_plan.run_mode = 'plan'
                   AND v_plan.command_name = p_command_name THEN
                    v_correlation_id := v_plan.correlation_id;
                END IF;
                IF p_run_status = 'applied' THEN
                    IF v_plan.run_id IS NULL OR v_plan.run_mode <> 'plan' OR v_plan.run_status <> 'planned'
                       OR v_plan.command_name IS DISTINCT FROM p_command_name
                       OR v_plan.params_digest IS DISTINCT FROM p_params_digest THEN
                        RAISE EXCEPTION 'run % is not a plan of % with these parameters', p_evidence ->> 'plan_run_id', p_command_name
                            USING ERRCODE = '22023';
                    END IF;
                    IF v_plan.created_at <= pg_catalog.clock_timestamp() - interval '1 hour' THEN
                        RAISE EXCEPTION 'plan % was made at %, more than an hour ago', v_plan.run_id, v_plan.created_at
                            USING ERRCODE = '55000',
                                  HINT = 'Plan again.';
                    END IF;
                    IF v_plan.catalog_md5 IS DISTINCT FROM (
                            SELECT pg_catalog.md5(ROW(c.command_name, c.category, c.mutating, c.reversible,
                                                      c.target_function, c.inverse_command,
                                                      c.required_gates)::text)
                              FROM public.dot_iu_command_catalog AS c
                             WHERE c.command_name = p_command_name) THEN
                        RAISE EXCEPTION 'the catalog row of % changed since plan %', p_command_name, v_plan.run_id
                            USING ERRCODE = '55000',
                                  HINT = 'Plan again.';
                    END IF;
                    IF v_correlation_id IS NOT NULL AND v_correlation_id IS DISTINCT FROM v_plan.correlation_id THEN
                        RAISE EXCEPTION 'plan % belongs to correlation %, not %', v_plan.run_id,
                                v_plan.correlation_id, v_correlation_id
                            USING ERRCODE = '22023';
                    END IF;
                    v_correlation_id := v_plan.correlation_id;
                END IF;
            END IF;

            -- The lease an applied apply row names (as the operator runtime records it) is still held by
            -- this login at that epoch: a holder whose lease expired during the apply cannot commit it.
            IF v_applied AND (p_evidence ? 'lease' OR p_evidence ? 'epoch') THEN
                IF p_evidence ->> 'epoch' !~ '^[0-9]{1,18}$' OR p_evidence ->> 'lease' IS NULL THEN
                    RAISE EXCEPTION 'evidence lease and epoch must name a lease and its epoch together'
                        USING ERRCODE = '22023';
                END IF;
                IF NOT EXISTS (
                        SELECT 1
                          FROM public.dot_iu_runtime_lease AS l
                         WHERE l.lease_name = p_evidence ->> 'lease'
                           AND l.epoch = (p_evidence ->> 'epoch')::bigint
                           AND l.session_login = session_user
                           AND l.released_at IS NULL
                           AND l.expires_at > pg_catalog.clock_timestamp()) THEN
                    RAISE EXCEPTION 'lease % at epoch % is no longer held by this login: expired, released, taken over or broken',
                            p_evidence ->> 'lease', p_evidence ->> 'epoch'
                        USING ERRCODE = '55000',
                              HINT = 'The apply rolls back; acquire the lease again and re-apply.';
                END IF;
            END IF;
        END IF;
    END IF;

    -- An 'applied' row in mode 'apply' holds the gates before anything reads them: one shared
    -- advisory lock, (1685025897, slot), slot = the backend's pid modulo 16, so concurrent
    -- appliers mostly take different locks; every close takes all 16 slots exclusively in
    -- dot_config's trigger (fn_dot_iu_gate_close_wait: fn_iu_gate_close, the watchdog, a
    -- direct UPDATE, DELETE or TRUNCATE of an open gate), so it waits until this transaction
    -- ends. The readings come in the next statement, whose snapshot (READ COMMITTED) is taken
    -- after the hold and so sees every close that committed before it. Taken as a plain
    -- expression first (no query); only while a close holds or waits for the slot does it
    -- queue for it.
    IF v_applied THEN
        IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(1685025897,
                                                           pg_catalog.pg_backend_pid() % 16) THEN
            PERFORM pg_catalog.pg_advisory_xact_lock_shared(1685025897,
                                                           pg_catalog.pg_backend_pid() % 16);
        END IF;
        -- Three INSERT statements below, one per kind of row, rather than one with CASEs: each
        -- call initializes only the expressions its row needs (the gate rule for an applied
        -- row, the catalog md5 for a plan), which is most of what the common row costs.
        -- The common path is one statement: the row is written only if the command is
        -- catalogued, the cached gate snapshot is valid, and the runtime gate and every gate
        -- of the catalog row's required_gates are among the snapshot's open_gates (the gate
        -- rule: one array containment; open_gates is generated from the snapshot itself, the
        -- keys it reads 'true'). When nothing is written, the path below finds out which of
        -- the three failed.
        INSERT INTO public.dot_iu_command_run
               (command_name, run_mode, run_status, mutating, actor, params_digest,
                gate_snapshot, evidence, session_login, correlation_id, plan_run_id)
        SELECT p_command_name, p_run_mode, p_run_status, c.mutating, p_actor, p_params_digest,
               s.snapshot, coalesce(p_evidence, '{}'::jsonb), session_user, v_correlation_id,
               v_plan_run_id
          FROM public.dot_iu_command_catalog AS c, public.dot_iu_gate_snapshot AS s
         WHERE c.command_name = p_command_name
           AND s.valid_until > pg_catalog.clock_timestamp()
           AND s.open_gates @> ('iu_core.operator_runtime_enabled'::text || c.required_gates)
        RETURNING run_id INTO v_run_id;
    ELSIF p_run_mode = 'plan' THEN
        -- A plan records the catalog row it was made against (a plan-bound apply compares it).
        INSERT INTO public.dot_iu_command_run
               (command_name, run_mode, run_status, mutating, actor, params_digest,
                gate_snapshot, evidence, session_login, correlation_id, plan_run_id)
        SELECT p_command_name, p_run_mode, p_run_status, c.mutating, p_actor, p_params_digest,
               s.snapshot,
               coalesce(p_evidence, '{}'::jsonb) || pg_catalog.jsonb_build_object(
                   'catalog_md5', pg_catalog.md5(ROW(c.command_name, c.category, c.mutating,
                                                     c.reversible, c.target_function,
                                                     c.inverse_command, c.required_gates)::text)),
               session_user, v_correlation_id, v_plan_run_id
          FROM public.dot_iu_command_catalog AS c, public.dot_iu_gate_snapshot AS s
         WHERE c.command_name = p_command_name
           AND s.valid_until > pg_catalog.clock_timestamp()
        RETURNING run_id INTO v_run_id;
    ELSE
        INSERT INTO public.dot_iu_command_run
               (command_name, run_mode, run_status, mutating, actor, params_digest,
                gate_snapshot, evidence, session_login, correlation_id, plan_run_id)
        SELECT p_command_name, p_run_mode, p_run_status, c.mutating, p_actor, p_params_digest,
               s.snapshot, coalesce(p_evidence, '{}'::jsonb), session_user, v_correlation_id,
               v_plan_run_id
          FROM public.dot_iu_command_catalog AS c, public.dot_iu_gate_snapshot AS s
         WHERE c.command_name = p_command_name
           AND s.valid_until > pg_catalog.clock_timestamp()
        RETURNING run_id INTO v_run_id;
    END IF;

    -- What only some rows need, behind one test the common row passes: a row not written, an
    -- applied row outside READ COMMITTED, a plan named, a fold due.
    IF v_run_id IS NULL OR v_run_id % 1024 = 0 OR v_plan_run_id IS NOT NULL
       OR (v_applied AND pg_catalog.current_setting('transaction_isolation') <> 'read committed') THEN
        IF v_run_id IS NULL THEN
            -- Nothing written: an uncatalogued command, a cached snapshot no longer valid (a window
            -- ended since it was cached), or, for an applied row, a gate that does not read open.
            SELECT c.mutating, c.required_gates,
                   CASE WHEN p_run_mode = 'plan'
                        THEN pg_catalog.md5(ROW(c.command_name, c.category, c.mutating, c.reversible,
                                                c.target_function, c.inverse_command,
                                                c.required_gates)::text) END
              INTO v_mutating, v_required, v_catalog_md5
              FROM public.dot_iu_command_catalog AS c
             WHERE c.command_name = p_command_name;
            IF NOT FOUND THEN
                IF EXISTS (SELECT 1 FROM public.dot_iu_command_catalog) THEN
                    RAISE EXCEPTION 'command % is not in the command catalog', p_command_name
                        USING ERRCODE = '23503',
                              HINT = 'Add it to seeds/ and generate a seed revision (make seed-revision).';
                END IF;
                -- The catalog is empty: record the run as mutating (the vocabulary is not loaded
                -- yet); an applied row needs the runtime gate only.
                v_mutating := true;
                v_required := '{}'::text[];
            END IF;
            -- The readings: the cached snapshot while valid, else afresh.
            v_snapshot := (SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s
                            WHERE s.valid_until > pg_catalog.clock_timestamp());
            IF v_snapshot IS NULL THEN
                SELECT pg_catalog.jsonb_object_agg(
                           g.gate_key, CASE WHEN g.reads_open THEN 'true' ELSE 'false' END)
                  INTO v_snapshot
                  FROM public.fn_iu_gate_state(NULL) AS g;
            END IF;
            IF v_applied THEN
                -- The gate rule, naming every gate that does not read open.
                FOREACH v_gate IN ARRAY 'iu_core.operator_runtime_enabled'::text || v_required LOOP
                    IF v_snapshot ->> v_gate IS DISTINCT FROM 'true' THEN
                        v_shut := pg_catalog.concat_ws(', ', v_shut, v_gate);
                    END IF;
                END LOOP;
                IF v_shut IS NOT NULL THEN
                    RAISE EXCEPTION 'an applied row of % needs its gates open; shut: %', p_command_name, v_shut
                        USING ERRCODE = '55000',
                              HINT = 'Open them through the gate protocol (substrate gates open), then apply again.';
                END IF;
            END IF;
            INSERT INTO public.dot_iu_command_run
                   (command_name, run_mode, run_status, mutating, actor, params_digest,
                    gate_snapshot, evidence, session_login, correlation_id, plan_run_id)
            VALUES (p_command_name, p_run_mode, p_run_status, v_mutating, p_actor, p_params_digest,
                    v_snapshot,
                    CASE WHEN v_catalog_md5 IS NULL THEN coalesce(p_evidence, '{}'::jsonb)
                         ELSE coalesce(p_evidence, '{}'::jsonb)
                              || pg_catalog.jsonb_build_object('catalog_md5', v_catalog_md5) END,
                    session_user, v_correlation_id, v_plan_run_id)
            RETURNING run_id INTO v_run_id;
        END IF;

        IF v_applied THEN
            -- A transaction snapshot (REPEATABLE READ, SERIALIZABLE) may predate a close that
            -- committed meanwhile: locking the gates' rows fails with 40001 then, and the row is
            -- not kept, instead of recording a stale 'open'.
            IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
                PERFORM 1
                   FROM public.dot_config AS d
                  WHERE d.key = ANY ('iu_core.operator_runtime_enabled'::text || coalesce(
                            (SELECT c.required_gates FROM public.dot_iu_command_catalog AS c
                              WHERE c.command_name = p_command_name), '{}'::text[]))
                  ORDER BY d.key
                    FOR SHARE;
            END IF;
            IF v_plan_run_id IS NOT NULL THEN
                BEGIN
                    INSERT INTO public.dot_iu_command_plan_use (plan_run_id, applied_run_id)
                    VALUES (v_plan_run_id, v_run_id);
                EXCEPTION WHEN unique_violation THEN
                    RAISE EXCEPTION 'plan % was applied already', v_plan_run_id
                        USING ERRCODE = '23505',
                              HINT = 'A plan is applied at most once: plan again.';
                END;
            END IF;
        END IF;

        IF v_run_id % 1024 = 0 THEN
            PERFORM public.fn_dot_iu_command_run_tally_fold();
        END IF;
    END IF;
    RETURN v_run_id;
END
$function$;
