-- fn_dot_iu_gate_snapshot_sync v1: statement trigger (AFTER INSERT OR UPDATE OR DELETE OR
-- TRUNCATE ON dot_config) that keeps public.dot_iu_gate_snapshot equal to the gates in
-- dot_config, by calling fn_dot_iu_gate_snapshot_refresh() in the writer's transaction.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_snapshot_sync()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM public.fn_dot_iu_gate_snapshot_refresh();
    RETURN NULL;
END
$function$;
