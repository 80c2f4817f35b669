-- fn_dot_iu_command_run_tally_delete v1: statement trigger (AFTER DELETE ON dot_iu_command_run,
-- transition table old_runs) that appends one negative delta per (command_name, run_mode,
-- run_status) of the rows a maintenance DELETE removed, however many they were, to
-- dot_iu_command_run_tally_delta, in the deleting transaction.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_delete()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    INSERT INTO public.dot_iu_command_run_tally_delta (command_name, run_mode, run_status, runs)
    SELECT o.command_name, o.run_mode, o.run_status, -pg_catalog.count(*)
      FROM old_runs AS o
     GROUP BY o.command_name, o.run_mode, o.run_status;
    RETURN NULL;
END
$function$;
