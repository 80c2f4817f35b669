-- fn_dot_iu_command_run_tally_delete v1: statement trigger (AFTER DELETE ON dot_iu_command_run,
-- transition table old_runs) that subtracts the deleted rows from the run tally, one grouped
-- statement however many rows a maintenance DELETE removed, in the shard of the deleting backend
-- (a shard may go negative; the sum over shards stays exact). Keys are taken in order, so two
-- maintenance deletes never deadlock on each other's tally rows.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_delete()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    INSERT INTO public.dot_iu_command_run_tally AS t
           (command_name, run_mode, run_status, shard, runs)
    SELECT o.command_name, o.run_mode, o.run_status, pg_catalog.pg_backend_pid() % 64,
           -pg_catalog.count(*)
      FROM old_runs AS o
     GROUP BY o.command_name, o.run_mode, o.run_status
     ORDER BY o.command_name, o.run_mode, o.run_status
    ON CONFLICT (command_name, run_mode, run_status, shard)
    DO UPDATE SET runs = t.runs + EXCLUDED.runs;
    RETURN NULL;
END
$function$;
