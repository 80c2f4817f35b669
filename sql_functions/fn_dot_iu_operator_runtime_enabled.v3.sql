-- fn_dot_iu_operator_runtime_enabled v3: fail-closed reader of the gate 'iu_core.operator_runtime_enabled'
-- (docs/gates.md).
-- True only when dot_config holds exactly 'true' for the key AND the gate's latest transition
-- (by transition_id) is an open whose window is live now: what fn_iu_gate_state calls
-- reads_open. A missing key, any other value, no live window on record: false.
-- An expired window reads closed at once, before the watchdog tidies the value up.
-- Replaces v2, which found the latest transition by created_at, a time a writer chooses.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_operator_runtime_enabled()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(
        (SELECT s.reads_open FROM public.fn_iu_gate_state('iu_core.operator_runtime_enabled') AS s),
        false
    )
$function$;
