-- fn_dot_iu_command_run_tally_truncate v2: statement trigger (AFTER TRUNCATE ON
-- dot_iu_command_run) that empties dot_iu_command_run_tally and moves its watermark back to 0
-- with no candidate (TRUNCATE ... RESTART IDENTITY draws run_ids from 1 again). TRUNCATE holds
-- ACCESS EXCLUSIVE on the ledger, so no writer and no fold is in flight.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_truncate()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    UPDATE public.dot_iu_command_run_tally_watermark
       SET folded_through = 0,
           candidate_through = NULL,
           candidate_writers = NULL,
           folded_at = pg_catalog.clock_timestamp();
    DELETE FROM public.dot_iu_command_run_tally;
    RETURN NULL;
END
$function$;
