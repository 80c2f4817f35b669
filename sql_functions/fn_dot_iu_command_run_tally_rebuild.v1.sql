-- fn_dot_iu_command_run_tally_rebuild v1: recomputes the run tally from the ledger and reports
-- what it found. Takes SHARE lock on dot_iu_command_run (waits for in-flight writers, holds new
-- ones until the caller's transaction ends), so the recount is exact; the tally then holds one
-- row per (command_name, run_mode, run_status) in shard 0. Returns
-- {"runs", "commands", "tally_rows", "runs_before", "tally_rows_before"}: runs_before <> runs
-- means the tally had drifted from the ledger (e.g. triggers disabled during a bulk load).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_rebuild()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_runs_before bigint;
    v_rows_before bigint;
    v_runs bigint;
    v_rows bigint;
    v_commands bigint;
BEGIN
    LOCK TABLE public.dot_iu_command_run IN SHARE MODE;
    LOCK TABLE public.dot_iu_command_run_tally IN EXCLUSIVE MODE;

    SELECT coalesce(pg_catalog.sum(t.runs), 0), pg_catalog.count(*)
      INTO v_runs_before, v_rows_before
      FROM public.dot_iu_command_run_tally AS t;

    DELETE FROM public.dot_iu_command_run_tally;
    INSERT INTO public.dot_iu_command_run_tally
           (command_name, run_mode, run_status, shard, runs)
    SELECT run.command_name, run.run_mode, run.run_status, 0, pg_catalog.count(*)
      FROM public.dot_iu_command_run AS run
     GROUP BY run.command_name, run.run_mode, run.run_status;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    SELECT coalesce(pg_catalog.sum(t.runs), 0), pg_catalog.count(DISTINCT t.command_name)
      INTO v_runs, v_commands
      FROM public.dot_iu_command_run_tally AS t;

    RETURN pg_catalog.jsonb_build_object(
        'runs', v_runs,
        'commands', v_commands,
        'tally_rows', v_rows,
        'runs_before', v_runs_before,
        'tally_rows_before', v_rows_before);
END
$function$;
