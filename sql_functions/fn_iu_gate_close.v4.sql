-- fn_iu_gate_close v4: force one governable gate to its safe default 'false' (docs/gates.md).
-- v4 over v3: the actor follows fn_dot_iu_text_problem (at most 200 characters, a letter or
-- digit, no control, format or invisible character), a reason holds at most 2,000 characters,
-- and the window it reports is the gate's latest transition by transition_id
-- (fn_iu_gate_state), never by a timestamp a writer could choose.
-- Closing a closed gate is a no-op on the value that still audits. Refusals (each raises, so
-- nothing is written and the gate is untouched):
--   never-flip gate                           22023 (never-flip keys are never written)
--   not one of the governable gates           22023 (unknown means deny; NULL included)
--   actor NULL, blank or not a name           22023
--   reason over 2,000 characters              22023
--   governable key missing from dot_config    22023
-- Locks the row of dot_iu_gate_snapshot, then the gate's dot_config row (FOR UPDATE): it
-- waits for an apply that holds the gate (the operator runtime holds the gates it needs until
-- its transaction ends), for at most the caller's lock_timeout.
-- On success, in the caller's transaction: value := 'false', one run-ledger row
-- (dot_iu_gate_close, apply, applied, through fn_iu_gate_log_run) and one iu_gate_transition
-- row (action 'close', with session_login) that points at it.
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
    v_problem text;
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
                coalesce(pg_catalog.quote_literal(pg_catalog.left(p_gate, 200)), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    v_problem := public.fn_dot_iu_text_problem(p_actor, 200);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'actor must name who closes gate %: it %', p_gate, v_problem
            USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.length(p_reason) > 2000 THEN
        RAISE EXCEPTION 'reason is % characters long: at most 2000', pg_catalog.length(p_reason)
            USING ERRCODE = '22023';
    END IF;

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
               'approval_id', s.approval_id, 'ttl_seconds', s.ttl_seconds,
               'opened_at', s.opened_at, 'expires_at', s.expires_at, 'live', s.window_live)
      INTO v_window
      FROM public.fn_iu_gate_state(p_gate) AS s
     WHERE s.action = 'open';

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
