-- fn_dot_iu_ledger_retire v1: governed retention (docs/seals.md). Removes from both ledgers the
-- whole sealed ranges whose rows are all older than p_before, and records the retirement in
-- each seal chain: who (p_actor, and session_login), when, which range, and the seal_sha256 of
-- the last link it retires, so the chain still proves what the retired rows were.
--   run ledger: the longest run of run seals, from the first one not retired yet, whose newest
--   row (newest_at) is older than p_before; only rows under the tally's watermark are sealed,
--   so the tally is taken down exactly by the ledger's delete trigger and the views stay exact;
--   transition ledger: every transition whose run row goes (a transition and its run are
--   written together, so they form a prefix of the transition ledger), deleted first, as the
--   foreign key needs; they must be sealed and form that prefix, or nothing happens (55000).
-- Maintenance is turned on for the deletes only (bound to this transaction) and off again.
-- Refusals: p_before NULL or in the future, actor not a name (fn_dot_iu_text_problem), reason
-- NULL, blank or over 2,000 characters: 22023. Returns {"before", "run": {first_id, last_id,
-- rows, seal_sha256} or null, "transition": ... or null}. Only the owner role may EXECUTE it.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_ledger_retire(
    p_before timestamptz,
    p_actor text,
    p_reason text
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_problem text;
    v_run_from bigint;
    v_run_seal record;
    v_tr_from bigint;
    v_tr_through bigint;
    v_tr_seal text;
    v_runs bigint := 0;
    v_transitions bigint := 0;
    v_run jsonb;
    v_transition jsonb;
BEGIN
    IF p_before IS NULL OR p_before > pg_catalog.now() THEN
        RAISE EXCEPTION 'p_before must be a moment in the past, got %', coalesce(p_before::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    v_problem := public.fn_dot_iu_text_problem(p_actor, 200);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'actor must name who retires ledger rows: it %', v_problem
            USING ERRCODE = '22023';
    END IF;
    IF p_reason IS NULL OR p_reason !~ '[^[:space:]]' OR pg_catalog.length(p_reason) > 2000 THEN
        RAISE EXCEPTION 'reason must say why (1 to 2000 characters)'
            USING ERRCODE = '22023';
    END IF;

    -- No fold (and so no seal of the run ledger) while we work; then both chains.
    PERFORM 1 FROM public.dot_iu_command_run_tally_watermark AS w FOR UPDATE;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('public.dot_iu_ledger_seal'),
                                             pg_catalog.hashtext('run'));
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('public.dot_iu_ledger_seal'),
                                             pg_catalog.hashtext('transition'));

    SELECT coalesce(pg_catalog.max(s.last_id), 0) + 1 INTO v_run_from
      FROM public.dot_iu_ledger_seal AS s
     WHERE s.ledger = 'run' AND s.action = 'retire';
    -- The last of the consecutive run seals, from v_run_from on, whose rows are all older.
    SELECT s.last_id, s.seal_sha256, s.column_count, s.newest_at INTO v_run_seal
      FROM public.dot_iu_ledger_seal AS s
     WHERE s.ledger = 'run' AND s.action = 'seal' AND s.first_id >= v_run_from
       AND s.seal_id < coalesce(
             (SELECT pg_catalog.min(o.seal_id) FROM public.dot_iu_ledger_seal AS o
               WHERE o.ledger = 'run' AND o.action = 'seal' AND o.first_id >= v_run_from
                 AND o.newest_at >= p_before),
             9223372036854775807)
     ORDER BY s.seal_id DESC
     LIMIT 1;
    IF v_run_seal.last_id IS NULL THEN
        RETURN pg_catalog.jsonb_build_object('before', p_before, 'run', NULL, 'transition', NULL);
    END IF;

    SELECT coalesce(pg_catalog.max(s.last_id), 0) + 1 INTO v_tr_from
      FROM public.dot_iu_ledger_seal AS s
     WHERE s.ledger = 'transition' AND s.action = 'retire';
    SELECT pg_catalog.max(t.transition_id) INTO v_tr_through
      FROM public.iu_gate_transition AS t
     WHERE t.run_id <= v_run_seal.last_id;
    IF v_tr_through IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM public.iu_gate_transition AS t
                    WHERE t.transition_id > v_tr_through AND t.run_id <= v_run_seal.last_id)
           OR EXISTS (SELECT 1 FROM public.iu_gate_transition AS t
                       WHERE t.transition_id <= v_tr_through AND t.run_id > v_run_seal.last_id) THEN
            RAISE EXCEPTION 'the transitions of the runs up to % do not form a prefix of the transition ledger: nothing retired',
                    v_run_seal.last_id
                USING ERRCODE = '55000',
                      HINT = 'Run substrate verify: the ledgers were written outside their functions.';
        END IF;
        SELECT s.seal_sha256 INTO v_tr_seal
          FROM public.dot_iu_ledger_seal AS s
         WHERE s.ledger = 'transition' AND s.action = 'seal' AND s.last_id = v_tr_through;
        IF v_tr_seal IS NULL THEN
            RAISE EXCEPTION 'transition % is not sealed: nothing retired', v_tr_through
                USING ERRCODE = '55000',
                      HINT = 'Run substrate verify: a transition was written with its seal trigger bypassed.';
        END IF;
    END IF;

    PERFORM pg_catalog.set_config('dot_iu.ledger_maintenance', pg_catalog.pg_current_xact_id()::text, true);
    IF v_tr_through IS NOT NULL THEN
        DELETE FROM public.iu_gate_transition AS t
         WHERE t.transition_id >= v_tr_from AND t.transition_id <= v_tr_through;
        GET DIAGNOSTICS v_transitions = ROW_COUNT;
    END IF;
    DELETE FROM public.dot_iu_command_run AS r
     WHERE r.run_id >= v_run_from AND r.run_id <= v_run_seal.last_id;
    GET DIAGNOSTICS v_runs = ROW_COUNT;
    PERFORM pg_catalog.set_config('dot_iu.ledger_maintenance', '', true);

    PERFORM public.fn_dot_iu_ledger_chain_append(
        'run', 'retire', v_run_from, v_run_seal.last_id, v_runs, v_run_seal.column_count,
        v_run_seal.seal_sha256, v_run_seal.newest_at, p_actor, p_reason, p_before);
    v_run := pg_catalog.jsonb_build_object('first_id', v_run_from, 'last_id', v_run_seal.last_id,
                                           'rows', v_runs, 'seal_sha256', v_run_seal.seal_sha256);
    IF v_tr_through IS NOT NULL THEN
        PERFORM public.fn_dot_iu_ledger_chain_append(
            'transition', 'retire', v_tr_from, v_tr_through, v_transitions,
            (SELECT s.column_count FROM public.dot_iu_ledger_seal AS s
              WHERE s.ledger = 'transition' AND s.action = 'seal' AND s.last_id = v_tr_through),
            v_tr_seal, NULL, p_actor, p_reason, p_before);
        v_transition := pg_catalog.jsonb_build_object(
            'first_id', v_tr_from, 'last_id', v_tr_through, 'rows', v_transitions,
            'seal_sha256', v_tr_seal);
    END IF;
    RETURN pg_catalog.jsonb_build_object('before', p_before, 'run', v_run, 'transition', v_transition);
END
$function$;
