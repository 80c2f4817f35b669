-- fn_dot_iu_operator_runtime_enabled v2: fail-closed reader of the gate
-- 'iu_core.operator_runtime_enabled' that also honours the bounded gate protocol (SPEC 3.4).
-- True only when dot_config holds exactly 'true' for the key AND the gate's latest transition in
-- public.iu_gate_transition is an 'open' whose expires_at is still ahead of clock_timestamp().
-- So an expired window reads as closed before the watchdog runs, and a value set to 'true' by
-- hand (no open window on record; also every database where the gate never went through
-- fn_iu_gate_open) reads as false. A missing key or any other value reads as false, as in v1.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_operator_runtime_enabled()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(
               (SELECT c.value = 'true'
                  FROM public.dot_config AS c
                 WHERE c.key = 'iu_core.operator_runtime_enabled'),
               false)
       AND coalesce(
               (SELECT t.action = 'open' AND t.expires_at > pg_catalog.clock_timestamp()
                  FROM public.iu_gate_transition AS t
                 WHERE t.gate_key = 'iu_core.operator_runtime_enabled'
                 ORDER BY t.created_at DESC, t.transition_id DESC
                 LIMIT 1),
               false)
$function$;
