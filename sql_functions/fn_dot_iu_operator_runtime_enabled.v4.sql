-- fn_dot_iu_operator_runtime_enabled v4: fail-closed reader of the gate 'iu_core.operator_runtime_enabled'
-- (docs/gates.md).
-- True only when dot_config holds exactly 'true' for the key AND the gate's latest transition
-- (by transition_id) is an open whose window is live now: what fn_iu_gate_state calls
-- reads_open. A missing key, any other value, no live window on record: false.
-- An expired window reads closed at once, before the watchdog tidies the value up.
-- v4 reads it through fn_iu_gate_reads_open, the one-gate path of fn_iu_gate_state's
-- reads_open, in PL/pgSQL (its plans are cached for the session): v3, an SQL function
-- pinned to a search_path, was parsed and planned again on every call.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_operator_runtime_enabled()
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    RETURN public.fn_iu_gate_reads_open('iu_core.operator_runtime_enabled');
END
$function$;
