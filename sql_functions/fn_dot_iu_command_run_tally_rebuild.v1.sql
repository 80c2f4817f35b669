-- fn_dot_iu_command_run_tally_rebuild v1: recounts dot_iu_command_run_tally from the ledger and
-- empties dot_iu_command_run_tally_delta, then reports what it found. Takes SHARE lock on
-- dot_iu_command_run (waits for in-flight writers, holds new ones until the caller's transaction
-- ends) and the fold lock, so the recount is exact. Returns {"runs", "commands", "tally_rows",
-- "runs_before", "deltas_before"}: runs_before (tally plus deltas) <> runs means the counts had
-- drifted from the ledger (e.g. its triggers were disabled during a bulk load).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_rebuild()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_runs_before bigint;
    v_deltas_before bigint;
    v_runs bigint;
    v_rows bigint;
    v_commands bigint;
BEGIN
    LOCK TABLE public.dot_iu_command_run IN SHARE MODE;
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('substrate.dot_iu_command_run_tally'));

    SELECT coalesce(pg_catalog.sum(t.runs), 0) INTO v_runs_before
      FROM public.dot_iu_command_run_tally AS t;
    SELECT v_runs_before + coalesce(pg_catalog.sum(d.runs), 0), pg_catalog.count(*)
      INTO v_runs_before, v_deltas_before
      FROM public.dot_iu_command_run_tally_delta AS d;

    DELETE FROM public.dot_iu_command_run_tally_delta;
    DELETE FROM public.dot_iu_command_run_tally;
    INSERT INTO public.dot_iu_command_run_tally (command_name, run_mode, run_status, runs)
    SELECT run.command_name, run.run_mode, run.run_status, pg_catalog.count(*)
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
        'deltas_before', v_deltas_before);
END
$function$;
