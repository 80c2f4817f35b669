-- fn_iu_gate_log_run v3: the run-ledger writer of the package's own protocol functions
-- (docs/roles.md): the 'apply' / 'applied' rows the public logger refuses to write for anyone
-- else (42501 there). v3 over v2: besides the gate protocol (dot_iu_gate_open, _close,
-- _watchdog) it writes the row of an operator's lease break (dot_iu_runtime_lease_break), so a
-- break is audited while every gate is shut. The name is the one v1 was released with. Only the
-- owner role may EXECUTE it, so only the package's SECURITY DEFINER functions reach it.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_log_run(
    p_command_name text,
    p_actor text,
    p_params_digest text,
    p_evidence jsonb
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_run_id bigint;
BEGIN
    IF pg_catalog.length(p_actor) > 200 THEN
        RAISE EXCEPTION 'actor is % characters long: at most 200', pg_catalog.length(p_actor)
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO public.dot_iu_command_run
           (command_name, run_mode, run_status, mutating, actor, params_digest,
            gate_snapshot, evidence, session_login)
    SELECT c.command_name, 'apply', 'applied', c.mutating, p_actor, p_params_digest,
           coalesce((SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s
                      WHERE s.valid_until > pg_catalog.clock_timestamp()),
                    (SELECT pg_catalog.jsonb_object_agg(
                                g.gate_key, CASE WHEN g.reads_open THEN 'true' ELSE 'false' END)
                       FROM public.fn_iu_gate_state(NULL) AS g)),
           coalesce(p_evidence, '{}'::jsonb), session_user
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = p_command_name
       AND c.command_name IN ('dot_iu_gate_open', 'dot_iu_gate_close', 'dot_iu_gate_watchdog',
                              'dot_iu_runtime_lease_break')
    RETURNING run_id INTO v_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'command % is not a catalogued command of the package''s own functions', p_command_name
            USING ERRCODE = '23503';
    END IF;

    IF v_run_id % 1024 = 0 THEN
        PERFORM public.fn_dot_iu_command_run_tally_fold();
    END IF;
    RETURN v_run_id;
END
$function$;
