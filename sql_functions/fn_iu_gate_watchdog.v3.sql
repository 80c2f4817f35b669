-- fn_iu_gate_watchdog v3: v2 with the identity of least privilege (docs/roles.md): each
-- run-ledger row goes through fn_iu_gate_log_run (the gate protocol's own writer, which only the
-- owner role may call), and each transition row records session_login = session_user beside
-- the actor the caller claims. v2 follows.
-- (v2) fn_iu_gate_watchdog: v1 plus one lock. Before it locks a gate's dot_config row it locks
-- the one row of public.dot_iu_gate_snapshot (0009_tally_watermark), which the dot_config
-- trigger rewrites after every gate change: with both locks taken in that order, a call that
-- changes several gates in one transaction (the watchdog) cannot deadlock with another gate
-- call. Gate calls therefore serialize on that row, not only per gate. v1 follows unchanged.
-- (v1) fn_iu_gate_watchdog: force-close every governable gate that is open ('true') without a live
-- window on record (SPEC 3.4), and return what it closed as a jsonb array, [] when nothing.
--   cause 'expired':  the gate's latest transition is an open whose expires_at has passed;
--   cause 'orphaned': the gate is 'true' but its latest transition is not an open (or it has
--                     none), e.g. a value set by hand.
-- A gate inside a live window (latest transition an open with expires_at > clock_timestamp())
-- is left alone. Refusal: actor NULL or blank raises 22023 and writes nothing.
-- Gates are locked one by one in key order (SELECT ... FOR UPDATE on the dot_config row, the
-- lock every fn_iu_gate_* call takes), and re-read under the lock, so a concurrent open or close
-- is either seen whole or not at all. Each close writes, in the caller's transaction, one
-- run-ledger row (dot_iu_gate_watchdog, apply, applied) and one iu_gate_transition row (action
-- 'watchdog_close') that points at it. When nothing needs closing nothing is written.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_watchdog(p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_gates text[];
    v_gate text;
    v_value text;
    v_action text;
    v_expires_at timestamptz;
    v_cause text;
    v_run_id bigint;
    v_transition_id bigint;
    v_closed jsonb := '[]'::jsonb;
BEGIN
    IF p_actor IS NULL OR p_actor !~ '[^[:space:]]' THEN
        RAISE EXCEPTION 'actor must name who runs the watchdog: it is %',
                CASE WHEN p_actor IS NULL THEN 'NULL' ELSE 'blank' END
            USING ERRCODE = '22023';
    END IF;

    -- v2: the gate snapshot row first, then the gate row: every gate writer takes the two
    -- locks in that order, so two of them never wait on each other crosswise (the dot_config
    -- trigger refreshes that row in this transaction).
    PERFORM 1 FROM public.dot_iu_gate_snapshot AS s FOR UPDATE;

    -- Candidates without locks; each is locked and re-read below.
    SELECT pg_catalog.array_agg(c.key ORDER BY c.key) INTO v_gates
      FROM public.dot_config AS c
      JOIN public.fn_iu_gate_classes() AS g ON g.gate_key = c.key
     WHERE g.gate_class = 'governable'
       AND c.value = 'true';

    FOREACH v_gate IN ARRAY coalesce(v_gates, '{}'::text[]) LOOP
        SELECT c.value INTO v_value
          FROM public.dot_config AS c
         WHERE c.key = v_gate
           FOR UPDATE;
        CONTINUE WHEN v_value IS DISTINCT FROM 'true';

        v_action := NULL;
        v_expires_at := NULL;
        SELECT t.action, t.expires_at INTO v_action, v_expires_at
          FROM public.iu_gate_transition AS t
         WHERE t.gate_key = v_gate
         ORDER BY t.created_at DESC, t.transition_id DESC
         LIMIT 1;
        CONTINUE WHEN v_action = 'open' AND v_expires_at > pg_catalog.clock_timestamp();
        v_cause := CASE WHEN v_action = 'open' THEN 'expired' ELSE 'orphaned' END;
        IF v_action IS DISTINCT FROM 'open' THEN
            v_expires_at := NULL;
        END IF;

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
