-- fn_iu_gate_open v4: open ONE governable gate for a bounded, approved window (docs/gates.md).
-- v4 over v3: the inputs follow fn_dot_iu_text_problem (an approval id and an actor hold at most
-- 200 characters, a letter or digit, and no control, format or invisible character; a reason
-- at most 2,000 characters); "already open" means the gate reads open (fn_iu_gate_state), so a
-- gate whose window expired opens again without waiting for the watchdog; and the value is
-- written last, after the transition that authorises it, because the dot_config trigger
-- (fn_dot_iu_gate_guard) lets a gate become 'true' only together with an 'open' transition
-- written in the same transaction.
-- Refusals, checked in this order; each raises, so nothing is written and the gate is untouched:
--   never-flip gate                          42501 (supply a real review_decision_id instead)
--   not one of the governable gates          22023 (unknown means deny; NULL included)
--   approval_id NULL, blank or not a name    23514 (no mutating gate opens without an approval)
--   ttl_seconds NULL or not in (0, 3600]     22023
--   actor NULL, blank or not a name          22023
--   reason over 2,000 characters             22023
--   governable key missing from dot_config   22023
--   gate reads open (a live window)          55000
-- Locks, in the order every gate writer takes them: the row of dot_iu_gate_snapshot, then the
-- gate's dot_config row (FOR UPDATE: of N simultaneous opens exactly one wins, the others see
-- the live window and raise 55000; an apply holding the gate waits this out first).
-- On success, in the caller's transaction: one run-ledger row (dot_iu_gate_open, apply,
-- applied, through fn_iu_gate_log_run; the digest covers every parameter, the evidence holds
-- no approval id or reason), one iu_gate_transition row (action 'open', with approval_id,
-- reason, the window and session_login) that points at it, then value := 'true'.
-- Time: the window starts at now() (the transaction's start, never later than the call) and
-- expires_at = now() + ttl_seconds; readers compare expires_at with clock_timestamp(). Both
-- choices end a window early rather than late, even inside a long transaction.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_open(
    p_gate text,
    p_approval_id text,
    p_actor text,
    p_reason text,
    p_ttl_seconds integer
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
    v_opened_at timestamptz := pg_catalog.now();
    v_expires_at timestamptz;
    v_run_id bigint;
    v_transition_id bigint;
BEGIN
    SELECT g.gate_class INTO v_class
      FROM public.fn_iu_gate_classes() AS g
     WHERE g.gate_key = p_gate;
    IF v_class = 'never-flip' THEN
        RAISE EXCEPTION 'gate % is never-flip and is never opened: supply a real review_decision_id instead of bypassing review',
                p_gate
            USING ERRCODE = '42501';
    END IF;
    IF v_class IS DISTINCT FROM 'governable' THEN
        RAISE EXCEPTION 'gate % is not a governable gate: unknown means deny',
                coalesce(pg_catalog.quote_literal(pg_catalog.left(p_gate, 200)), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'Governable gates: ' || (SELECT pg_catalog.string_agg(g.gate_key, ', ' ORDER BY g.gate_key)
                                                    FROM public.fn_iu_gate_classes() AS g
                                                   WHERE g.gate_class = 'governable') || '.';
    END IF;
    v_problem := public.fn_dot_iu_text_problem(p_approval_id, 200);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'no mutating gate opens without an approval: approval_id %', v_problem
            USING ERRCODE = '23514';
    END IF;
    IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 OR p_ttl_seconds > 3600 THEN
        RAISE EXCEPTION 'ttl_seconds must be in (0, 3600], got %', coalesce(p_ttl_seconds::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    v_problem := public.fn_dot_iu_text_problem(p_actor, 200);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'actor must name who opens gate %: it %', p_gate, v_problem
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
        RAISE EXCEPTION 'gate % has no row in public.dot_config: nothing to open', p_gate
            USING ERRCODE = '22023';
    END IF;
    IF (SELECT s.reads_open FROM public.fn_iu_gate_state(p_gate) AS s) THEN
        RAISE EXCEPTION 'gate % is already open', p_gate
            USING ERRCODE = '55000',
                  HINT = 'Close it first (fn_iu_gate_close), or let its window end.';
    END IF;

    v_expires_at := v_opened_at + pg_catalog.make_interval(secs => p_ttl_seconds);
    v_run_id := public.fn_iu_gate_log_run(
        'dot_iu_gate_open', p_actor,
        pg_catalog.md5(pg_catalog.jsonb_build_object(
            'gate', p_gate, 'approval_id', p_approval_id, 'actor', p_actor,
            'reason', p_reason, 'ttl_seconds', p_ttl_seconds)::text),
        pg_catalog.jsonb_build_object(
            'gate', p_gate, 'action', 'open', 'prev_value', v_prev, 'new_value', 'true',
            'ttl_seconds', p_ttl_seconds, 'opened_at', v_opened_at, 'expires_at', v_expires_at));

    INSERT INTO public.iu_gate_transition
           (gate_key, action, prev_value, new_value, approval_id, ttl_seconds, expires_at,
            actor, reason, run_id, session_login)
    VALUES (p_gate, 'open', v_prev, 'true', p_approval_id, p_ttl_seconds, v_expires_at,
            p_actor, p_reason, v_run_id, session_user)
    RETURNING transition_id INTO v_transition_id;

    UPDATE public.dot_config
       SET value = 'true', updated_at = pg_catalog.now()
     WHERE key = p_gate;

    RETURN pg_catalog.jsonb_build_object(
        'gate', p_gate,
        'action', 'open',
        'prev_value', v_prev,
        'new_value', 'true',
        'changed', true,
        'window', pg_catalog.jsonb_build_object(
            'approval_id', p_approval_id, 'ttl_seconds', p_ttl_seconds,
            'opened_at', v_opened_at, 'expires_at', v_expires_at),
        'run_id', v_run_id,
        'transition_id', v_transition_id);
END
$function$;
