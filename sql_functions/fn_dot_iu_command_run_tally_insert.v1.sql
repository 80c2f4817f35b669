-- fn_dot_iu_command_run_tally_insert v1: row trigger (AFTER INSERT ON dot_iu_command_run) that
-- adds 1 to the run tally for the new row's (command_name, run_mode, run_status), in the shard
-- of the writing backend (pg_backend_pid() % 64): concurrent writers, even on the same command,
-- update different tally rows instead of queueing on one hot counter. It runs in the writer's
-- transaction, so a rolled-back write leaves no trace; only the sum over shards means anything.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_insert()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    INSERT INTO public.dot_iu_command_run_tally AS t
           (command_name, run_mode, run_status, shard, runs)
    VALUES (NEW.command_name, NEW.run_mode, NEW.run_status, pg_catalog.pg_backend_pid() % 64, 1)
    ON CONFLICT (command_name, run_mode, run_status, shard)
    DO UPDATE SET runs = t.runs + 1;
    RETURN NULL;
END
$function$;
