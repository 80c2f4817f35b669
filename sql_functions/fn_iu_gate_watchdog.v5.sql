-- fn_iu_gate_watchdog v5: v4, and it never waits for an applied row in flight either. Closing a
-- gate takes the gates' hold exclusively (dot_config's close-wait trigger,
-- fn_dot_iu_gate_close_wait), a slot of which every transaction recording an applied row holds
-- shared until it ends; v5 tries for each slot first (pg_try_advisory_xact_lock) and, while
-- such a transaction is in flight, leaves every gate for the next run with a NOTICE (they read
-- closed already), so a cron run never queues behind an apply. v4's description follows.
-- (v4) fn_iu_gate_watchdog: force-close every governable gate whose value is 'true' while it does
-- not read open (docs/gates.md), and return what it closed as a jsonb array, [] when nothing.
--   cause 'expired':  the gate's latest transition (by transition_id) is an open whose window
--                     is no longer live;
--   cause 'orphaned': the gate is 'true' but its latest transition is not an open (or it has
--                     none), e.g. a value set with the dot_config trigger bypassed.
-- The readers already read such a gate closed (fn_iu_gate_state): the watchdog tidies the
-- value up and audits it. A gate inside a live window is left alone.
-- v4 over v3: the actor follows fn_dot_iu_text_problem (22023 otherwise, nothing written);
-- gates are judged by fn_iu_gate_state (latest transition by transition_id); and it never
-- waits for a gate row someone else holds: an apply in flight holds the rows of the gates it
-- needs, and a writer may hold a row, so such a gate is skipped with a NOTICE (it reads closed
-- already; the next run closes it) instead of keeping a cron run waiting. Writers of keys that
-- are not gates never hold anything it takes.
-- Locks: the row of dot_iu_gate_snapshot first (the order every gate writer follows), then
-- each gate row with FOR UPDATE SKIP LOCKED, re-judged under the lock. Each close writes, in
-- the caller's transaction, one run-ledger row (dot_iu_gate_watchdog, apply, applied, through
-- fn_iu_gate_log_run) and one iu_gate_transition row (action 'watchdog_close', with
-- session_login) that points at it. When nothing needs closing nothing is written.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_watchdog(p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_problem text;
    v_gates text[];
    v_gate text;
    v_state record;
    v_cause text;
    v_expires_at timestamptz;
    v_run_id bigint;
    v_transition_id bigint;
    v_closed jsonb := '[]'::jsonb;
BEGIN
    v_problem := public.fn_dot_iu_text_problem(p_actor, 200);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'actor must name who runs the watchdog: it %', v_problem
            USING ERRCODE = '22023';
    END IF;

    PERFORM 1 FROM public.dot_iu_gate_snapshot AS s FOR UPDATE;

    SELECT pg_catalog.array_agg(s.gate_key ORDER BY s.gate_key) INTO v_gates
      FROM public.fn_iu_gate_state(NULL) AS s
     WHERE s.gate_class = 'governable' AND s.value = 'true' AND NOT s.reads_open;

    -- The 16 slots of the hold in order, as a close takes them; the first one held by an
    -- applier ends the try (the slots already taken are kept until this transaction ends).
    IF v_gates IS NOT NULL AND EXISTS (
            SELECT 1 FROM pg_catalog.generate_series(0, 15) AS s (slot)
             WHERE NOT pg_catalog.pg_try_advisory_xact_lock(1685025897, s.slot)) THEN
        RAISE NOTICE 'gate(s) % left for the next run: an applied row is being recorded under the gates; they read closed already',
            pg_catalog.array_to_string(v_gates, ', ');
        RETURN v_closed;
    END IF;

    FOREACH v_gate IN ARRAY coalesce(v_gates, '{}'::text[]) LOOP
        PERFORM 1 FROM public.dot_config AS c WHERE c.key = v_gate FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RAISE NOTICE 'gate % is held by another transaction (an apply in flight?): left for the next run; it reads closed already',
                v_gate;
            CONTINUE;
        END IF;
        SELECT * INTO v_state FROM public.fn_iu_gate_state(v_gate) AS s;
        CONTINUE WHEN v_state.value IS DISTINCT FROM 'true' OR v_state.reads_open;
        v_cause := CASE WHEN v_state.action = 'open' THEN 'expired' ELSE 'orphaned' END;
        v_expires_at := CASE WHEN v_state.action = 'open' THEN v_state.expires_at END;

        UPDATE public.dot_config
           SET value = 'false', updated_at = pg_catalog.now()
         WHERE key = v_gate;

        v_run_id := public.fn_iu_gate_log_run(
            'dot_iu_gate_watchdog', p_actor,
            pg_catalog.md5(pg_catalog.jsonb_build_object(
                'gate', v_gate, 'actor', p_actor, 'cause', v_cause)::text),
            pg_catalog.jsonb_build_object(
                'gate', v_gate, 'action', 'watchdog_close', 'cause', v_cause,
                'prev_value', 'true', 'new_value', 'false', 'expires_at', v_expires_at));

        INSERT INTO public.iu_gate_transition
               (gate_key, action, prev_value, new_value, actor, reason, run_id, session_login)
        VALUES (v_gate, 'watchdog_close', 'true', 'false', p_actor,
                CASE v_cause
                    WHEN 'expired' THEN 'watchdog: window expired at '
                         || pg_catalog.to_char(v_expires_at AT TIME ZONE 'UTC',
                                               'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                    ELSE 'watchdog: open with no open window on record'
                END,
                v_run_id, session_user)
        RETURNING transition_id INTO v_transition_id;

        v_closed := v_closed || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'gate', v_gate,
            'action', 'watchdog_close',
            'cause', v_cause,
            'prev_value', 'true',
            'new_value', 'false',
            'expires_at', v_expires_at,
            'run_id', v_run_id,
            'transition_id', v_transition_id));
    END LOOP;

    RETURN v_closed;
END
$function$;
