-- fn_dot_iu_command_run_tally_truncate v1: statement trigger (AFTER TRUNCATE ON
-- dot_iu_command_run) that empties dot_iu_command_run_tally and dot_iu_command_run_tally_delta.
-- TRUNCATE holds ACCESS EXCLUSIVE on the ledger, so no writer is in flight; the fold lock keeps
-- a fold (or a rebuild) from running beside it.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_truncate()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('substrate.dot_iu_command_run_tally'));
    DELETE FROM public.dot_iu_command_run_tally_delta;
    DELETE FROM public.dot_iu_command_run_tally;
    RETURN NULL;
END
$function$;
