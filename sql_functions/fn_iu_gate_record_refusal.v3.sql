-- fn_iu_gate_record_refusal v3: records a gate call the protocol refused (or that failed) as
-- one 'refused' (or 'failed') run-ledger row of its command, in the caller's transaction: the
-- refusal audit of the tools that call the gate functions (substrate gates, the operator
-- runtime), which run it in a transaction of their own after the refused call rolled back
-- (docs/gates.md). The gate operator role may EXECUTE it instead of the general logger, so it
-- records refusals and nothing else (docs/roles.md).
-- Arguments: the call (p_action: open, close or watchdog) with the arguments it was given, the
-- outcome (p_status: refused or failed) and the database's answer (p_sqlstate, p_message).
-- The row: params_digest is the md5 the gate function computes for the same arguments (so a
-- refused and an applied call with the same arguments carry the same digest), evidence is
-- {sqlstate, message (at most 500 characters), gate (at most 200), actor_missing |
-- actor_invalid}: never the approval or the reason. The actor is the one given when it is a
-- valid actor, else '(no actor given)' or '(invalid actor)'. v2: valid is what
-- fn_dot_iu_text_problem accepts (v1: not blank, at most 200 characters), the rules the gate
-- functions and the logger apply. v3 writes the row itself, as fn_iu_gate_log_run writes the
-- protocol's applied rows, instead of through the general logger: from fn_dot_iu_command_log v7
-- on the logger takes only refused rows of the package's own commands, so the gate protocol's
-- failed rows come from here alone; and a password in a URL of the message is masked
-- (scheme://user:***@), as the logger refuses one in evidence. Refuses (22023) an unknown
-- action or status.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_record_refusal(
    p_action text,
    p_status text,
    p_gate text,
    p_approval_id text,
    p_actor text,
    p_reason text,
    p_ttl_seconds numeric,
    p_sqlstate text,
    p_message text
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_run_id bigint;
    v_digest text;
    v_actor text := p_actor;
    v_evidence jsonb;
BEGIN
    IF p_action IS NULL OR p_action NOT IN ('open', 'close', 'watchdog') THEN
        RAISE EXCEPTION 'action must be open, close or watchdog, got %',
                coalesce(pg_catalog.quote_literal(p_action), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_status IS NULL OR p_status NOT IN ('refused', 'failed') THEN
        RAISE EXCEPTION 'status must be refused or failed, got %',
                coalesce(pg_catalog.quote_literal(p_status), 'NULL')
            USING ERRCODE = '22023';
    END IF;

    v_digest := pg_catalog.md5(CASE p_action
        WHEN 'open' THEN pg_catalog.jsonb_build_object(
            'gate', p_gate, 'approval_id', p_approval_id, 'actor', p_actor,
            'reason', p_reason, 'ttl_seconds', p_ttl_seconds)
        WHEN 'close' THEN pg_catalog.jsonb_build_object(
            'gate', p_gate, 'actor', p_actor, 'reason', p_reason)
        ELSE pg_catalog.jsonb_build_object('actor', p_actor)
    END::text);

    v_evidence := pg_catalog.jsonb_build_object(
        'sqlstate', CASE WHEN p_sqlstate ~ '^[0-9A-Z]{5}$' THEN p_sqlstate END,
        'message', pg_catalog.left(pg_catalog.regexp_replace(pg_catalog.regexp_replace(
                       coalesce(p_message, ''), '\s+', ' ', 'g'),
                       '([a-z][a-z0-9+.-]*://[^/@:[:space:]]+:)[^/@[:space:]]*@', '\1***@', 'gi'),
                   500));
    IF p_gate IS NOT NULL THEN
        v_evidence := v_evidence || pg_catalog.jsonb_build_object('gate', pg_catalog.left(p_gate, 200));
    END IF;
    IF p_actor IS NULL OR p_actor !~ '[^[:space:]]' THEN
        v_actor := '(no actor given)';
        v_evidence := v_evidence || '{"actor_missing": true}'::jsonb;
    ELSIF public.fn_dot_iu_text_problem(p_actor, 200) IS NOT NULL THEN
        v_actor := '(invalid actor)';
        v_evidence := v_evidence || '{"actor_invalid": true}'::jsonb;
    END IF;

    INSERT INTO public.dot_iu_command_run
           (command_name, run_mode, run_status, mutating, actor, params_digest,
            gate_snapshot, evidence, session_login)
    SELECT c.command_name, 'apply', p_status, c.mutating, v_actor, v_digest,
           coalesce((SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s
                      WHERE s.valid_until > pg_catalog.clock_timestamp()),
                    (SELECT pg_catalog.jsonb_object_agg(
                                g.gate_key, CASE WHEN g.reads_open THEN 'true' ELSE 'false' END)
                       FROM public.fn_iu_gate_state(NULL) AS g)),
           v_evidence, session_user
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = 'dot_iu_gate_' || p_action
    RETURNING run_id INTO v_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'command % is not in the command catalog', 'dot_iu_gate_' || p_action
            USING ERRCODE = '23503';
    END IF;

    IF v_run_id % 1024 = 0 THEN
        PERFORM public.fn_dot_iu_command_run_tally_fold();
    END IF;
    RETURN v_run_id;
END
$function$;
