-- fn_dot_iu_command_run_tally_truncate v1: statement trigger (AFTER TRUNCATE ON
-- dot_iu_command_run) that empties the run tally. TRUNCATE holds ACCESS EXCLUSIVE on the ledger,
-- so no writer is in flight: every tally row counts rows that TRUNCATE just removed.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_truncate()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    DELETE FROM public.dot_iu_command_run_tally;
    RETURN NULL;
END
$function$;
