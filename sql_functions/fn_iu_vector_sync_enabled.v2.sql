-- fn_iu_vector_sync_enabled v2: fail-closed reader of the gate 'iu_core.vector_sync_enabled'
-- (docs/gates.md).
-- True only when dot_config holds exactly 'true' for the key AND the gate's latest transition
-- (by transition_id) is an open whose window is live now: what fn_iu_gate_state calls
-- reads_open. A missing key, any other value, no live window on record: false.
-- A never-flip gate: fn_iu_gate_open never opens it and a trigger on dot_config keeps
-- its value at 'false', so this reads false unless both were bypassed.
-- Replaces v1, which read the value alone.
CREATE OR REPLACE FUNCTION public.fn_iu_vector_sync_enabled()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(
        (SELECT s.reads_open FROM public.fn_iu_gate_state('iu_core.vector_sync_enabled') AS s),
        false
    )
$function$;
