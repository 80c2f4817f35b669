-- fn_dot_iu_command_run_tally_delete v2: statement trigger (AFTER DELETE ON dot_iu_command_run,
-- transition table old_runs) that takes the rows a maintenance DELETE removed at or below the
-- tally's watermark off dot_iu_command_run_tally, one UPDATE per (command_name, run_mode,
-- run_status), in the deleting transaction; rows past the watermark were never counted there.
-- It locks the watermark row first, so it waits for a fold in flight (which may have counted
-- these rows) and reads the watermark that fold left; under REPEATABLE READ or SERIALIZABLE a
-- fold committed since the snapshot makes it raise 40001 rather than miscount. Keys left at zero
-- are removed.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_delete()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_folded_through bigint;
BEGIN
    SELECT w.folded_through INTO v_folded_through
      FROM public.dot_iu_command_run_tally_watermark AS w
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dot_iu_command_run_tally_watermark has no row: the run tally cannot follow this delete'
            USING ERRCODE = '55000',
                  HINT = 'Run SELECT public.fn_dot_iu_command_run_tally_rebuild() first.';
    END IF;

    WITH gone AS (
        SELECT o.command_name, o.run_mode, o.run_status, pg_catalog.count(*) AS runs
          FROM old_runs AS o
         WHERE o.run_id <= v_folded_through
         GROUP BY o.command_name, o.run_mode, o.run_status
    )
    UPDATE public.dot_iu_command_run_tally AS t
       SET runs = t.runs - g.runs
      FROM gone AS g
     WHERE t.command_name = g.command_name
       AND t.run_mode = g.run_mode
       AND t.run_status = g.run_status;
    DELETE FROM public.dot_iu_command_run_tally AS t WHERE t.runs = 0;
    RETURN NULL;
END
$function$;
