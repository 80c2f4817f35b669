-- fn_iu_gate_open v3: v2 with the identity of least privilege (docs/roles.md): the run-ledger
-- row goes through fn_iu_gate_log_run (the gate protocol's own writer, which only the owner role
-- may call; the public logger refuses applied gate rows to everyone else), and the transition
-- row records session_login = session_user beside the actor the caller claims. v2 follows.
-- (v2) fn_iu_gate_open: v1 plus one lock. Before it locks a gate's dot_config row it locks
-- the one row of public.dot_iu_gate_snapshot (0009_tally_watermark), which the dot_config
-- trigger rewrites after every gate change: with both locks taken in that order, a call that
-- changes several gates in one transaction (the watchdog) cannot deadlock with another gate
-- call. Gate calls therefore serialize on that row, not only per gate. v1 follows unchanged.
-- (v1) fn_iu_gate_open: open ONE governable gate for a bounded, approved window (SPEC 3.4).
-- Refusals, checked in this order; each raises, so nothing is written and the gate is untouched:
--   never-flip gate                   42501 (supply a real review_decision_id instead)
--   not one of the governable gates   22023 (unknown means deny; NULL included)
--   approval_id NULL or blank         23514
--   ttl_seconds NULL or not in (0, 3600]  22023
--   actor NULL or blank               22023
--   governable key missing from dot_config  22023
--   gate already open (value 'true')  55000
-- Concurrent calls on one gate serialize on its dot_config row (SELECT ... FOR UPDATE), so of N
-- simultaneous opens exactly one wins and the others see 'true' and raise 55000.
-- On success, in the caller's transaction: value := 'true'; one run-ledger row
-- (dot_iu_gate_open, apply, applied; the digest covers every parameter, the evidence holds no
-- approval id or reason) and one iu_gate_transition row (action 'open', with approval_id, reason
-- and the window) that points at it.
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
                coalesce(pg_catalog.quote_literal(p_gate), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'Governable gates: ' || (SELECT pg_catalog.string_agg(g.gate_key, ', ' ORDER BY g.gate_key)
                                                    FROM public.fn_iu_gate_classes() AS g
                                                   WHERE g.gate_class = 'governable') || '.';
    END IF;
    IF p_approval_id IS NULL OR p_approval_id !~ '[^[:space:]]' THEN
        RAISE EXCEPTION 'no mutating gate opens without an approval: approval_id is %',
                CASE WHEN p_approval_id IS NULL THEN 'NULL' ELSE 'blank' END
            USING ERRCODE = '23514';
    END IF;
    IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 OR p_ttl_seconds > 3600 THEN
        RAISE EXCEPTION 'ttl_seconds must be in (0, 3600], got %', coalesce(p_ttl_seconds::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_actor IS NULL OR p_actor !~ '[^[:space:]]' THEN
        RAISE EXCEPTION 'actor must name who opens gate %: it is %', p_gate,
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
        RAISE EXCEPTION 'gate % has no row in public.dot_config: nothing to open', p_gate
            USING ERRCODE = '22023';
    END IF;
    IF v_prev = 'true' THEN
        RAISE EXCEPTION 'gate % is already open', p_gate
            USING ERRCODE = '55000',
                  HINT = 'Close it first (fn_iu_gate_close), or let its window end and the watchdog close it.';
    END IF;

    v_expires_at := v_opened_at + pg_catalog.make_interval(secs => p_ttl_seconds);
    UPDATE public.dot_config
       SET value = 'true', updated_at = pg_catalog.now()
     WHERE key = p_gate;

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
