-- fn_dot_iu_command_run_tally_insert v1: row trigger (AFTER INSERT ON dot_iu_command_run) that
-- appends one delta (+1 for the new row's command_name, run_mode, run_status) to
-- dot_iu_command_run_tally_delta: an insert into an unindexed table, in the writer's
-- transaction, so a rolled-back write leaves no trace and concurrent writers never wait on each
-- other. About one write in 1024 (run_id % 1024 = 0) then folds the pending deltas into
-- dot_iu_command_run_tally (fn_dot_iu_command_run_tally_fold), which keeps the deltas the views
-- read few, whatever the size of the ledger.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_insert()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    INSERT INTO public.dot_iu_command_run_tally_delta (command_name, run_mode, run_status, runs)
    VALUES (NEW.command_name, NEW.run_mode, NEW.run_status, 1);
    IF NEW.run_id % 1024 = 0 THEN
        PERFORM public.fn_dot_iu_command_run_tally_fold();
    END IF;
    RETURN NULL;
END
$function$;
