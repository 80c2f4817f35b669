-- fn_iu_gate_close v3: v2 with the identity of least privilege (docs/roles.md): the run-ledger
-- row goes through fn_iu_gate_log_run (the gate protocol's own writer, which only the owner role
-- may call; the public logger refuses applied gate rows to everyone else), and the transition
-- row records session_login = session_user beside the actor the caller claims. v2 follows.
-- (v2) fn_iu_gate_close: v1 plus one lock. Before it locks a gate's dot_config row it locks
-- the one row of public.dot_iu_gate_snapshot (0009_tally_watermark), which the dot_config
-- trigger rewrites after every gate change: with both locks taken in that order, a call that
-- changes several gates in one transaction (the watchdog) cannot deadlock with another gate
-- call. Gate calls therefore serialize on that row, not only per gate. v1 follows unchanged.
-- (v1) fn_iu_gate_close: force one governable gate to its safe default 'false' (SPEC 3.4).
-- Closing a closed gate is a no-op on the value that still audits. Refusals (each raises, so
-- nothing is written and the gate is untouched):
--   never-flip gate                           22023 (never-flip keys are never written)
--   not one of the governable gates           22023 (unknown means deny; NULL included)
--   actor NULL or blank                       22023
--   governable key missing from dot_config    22023
-- Serializes with every other call on the gate on its dot_config row (SELECT ... FOR UPDATE).
-- On success, in the caller's transaction: one run-ledger row (dot_iu_gate_close, apply,
-- applied) and one iu_gate_transition row (action 'close') that points at it. The result names
-- the window that was open, if the latest transition of the gate is an open.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_close(
    p_gate text,
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
    v_class text;
    v_prev text;
    v_window jsonb;
    v_run_id bigint;
    v_transition_id bigint;
BEGIN
    SELECT g.gate_class INTO v_class
      FROM public.fn_iu_gate_classes() AS g
     WHERE g.gate_key = p_gate;
    IF v_class = 'never-flip' THEN
        RAISE EXCEPTION 'gate % is never-flip: it is never written, not even to close it', p_gate
            USING ERRCODE = '22023';
    END IF;
    IF v_class IS DISTINCT FROM 'governable' THEN
        RAISE EXCEPTION 'gate % is not a governable gate: unknown means deny',
                coalesce(pg_catalog.quote_literal(p_gate), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_actor IS NULL OR p_actor !~ '[^[:space:]]' THEN
        RAISE EXCEPTION 'actor must name who closes gate %: it is %', p_gate,
                CASE WHEN p_actor IS NULL THEN 'NULL' ELSE 'blank' END
            USING ERRCODE = '22023';
    END IF;

    -- v2: the gate snapshot row first, then the gate row: every gate writer takes the two
    -- locks in that order, so two of them never wait on each other crosswise (the dot_config
    -- trigger refreshes that row in this transaction).
    PERFORM 1 FROM public.dot_iu_gate_snapshot AS s FOR UPDATE;

    SELECT c.value INTO v_prev
      FROM public.dot_config AS c
     WHERE c.key = p_gate
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'gate % has no row in public.dot_config: nothing to close', p_gate
            USING ERRCODE = '22023';
    END IF;

    SELECT pg_catalog.jsonb_build_object(
               'approval_id', t.approval_id, 'ttl_seconds', t.ttl_seconds,
               'opened_at', t.expires_at - pg_catalog.make_interval(secs => t.ttl_seconds),
               'expires_at', t.expires_at,
               'live', t.expires_at > pg_catalog.clock_timestamp())
      INTO v_window
      FROM (SELECT tr.action, tr.approval_id, tr.ttl_seconds, tr.expires_at
              FROM public.iu_gate_transition AS tr
             WHERE tr.gate_key = p_gate
             ORDER BY tr.created_at DESC, tr.transition_id DESC
             LIMIT 1) AS t
     WHERE t.action = 'open';

    IF v_prev IS DISTINCT FROM 'false' THEN
        UPDATE public.dot_config
           SET value = 'false', updated_at = pg_catalog.now()
         WHERE key = p_gate;
    END IF;

    v_run_id := public.fn_iu_gate_log_run(
        'dot_iu_gate_close', p_actor,
        pg_catalog.md5(pg_catalog.jsonb_build_object(
            'gate', p_gate, 'actor', p_actor, 'reason', p_reason)::text),
        pg_catalog.jsonb_build_object(
            'gate', p_gate, 'action', 'close', 'prev_value', v_prev, 'new_value', 'false',
            'changed', v_prev IS DISTINCT FROM 'false'));

    INSERT INTO public.iu_gate_transition
           (gate_key, action, prev_value, new_value, actor, reason, run_id, session_login)
    VALUES (p_gate, 'close', v_prev, 'false', p_actor, p_reason, v_run_id, session_user)
    RETURNING transition_id INTO v_transition_id;

    RETURN pg_catalog.jsonb_build_object(
        'gate', p_gate,
        'action', 'close',
        'prev_value', v_prev,
        'new_value', 'false',
        'changed', v_prev IS DISTINCT FROM 'false',
        'window', v_window,
        'run_id', v_run_id,
        'transition_id', v_transition_id);
END
$function$;
