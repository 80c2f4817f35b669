-- fn_dot_iu_command_run_tally_rebuild v3: v2, and the rows it moves under the watermark (past
-- the old watermark, up to the ledger's highest run_id) are sealed as one link of the run
-- ledger's seal chain, as a fold seals what it moves (docs/seals.md). Under its SHARE lock no
-- write is in flight. v2's description follows.
-- (v2) fn_dot_iu_command_run_tally_rebuild: recounts dot_iu_command_run_tally from the whole
-- ledger and puts its watermark at the ledger's highest run_id (no candidate), then reports what
-- it found. Takes SHARE lock on dot_iu_command_run (waits for in-flight writers, holds new ones
-- until the caller's transaction ends) and the watermark row (re-created if it was missing), so
-- the recount is exact. Returns {"runs", "commands", "tally_rows", "runs_before",
-- "folded_through"}: runs_before (what the views counted: the tally plus the rows past the old
-- watermark) <> runs means the counts had drifted from the ledger (e.g. rows written with
-- OVERRIDING SYSTEM VALUE below the watermark, or its triggers disabled during a delete).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_rebuild()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_folded_before bigint;
    v_runs_before bigint;
    v_folded_through bigint;
    v_runs bigint;
    v_rows bigint;
    v_commands bigint;
    v_sealed_through bigint;
BEGIN
    LOCK TABLE public.dot_iu_command_run IN SHARE MODE;
    INSERT INTO public.dot_iu_command_run_tally_watermark (singleton, folded_through)
    VALUES (true, 0)
    ON CONFLICT (singleton) DO NOTHING;
    SELECT w.folded_through INTO v_folded_before
      FROM public.dot_iu_command_run_tally_watermark AS w
       FOR UPDATE;

    SELECT coalesce(pg_catalog.sum(t.runs), 0) INTO v_runs_before
      FROM public.dot_iu_command_run_tally AS t;
    SELECT v_runs_before + pg_catalog.count(*) INTO v_runs_before
      FROM public.dot_iu_command_run AS run
     WHERE run.run_id > v_folded_before;

    DELETE FROM public.dot_iu_command_run_tally;
    INSERT INTO public.dot_iu_command_run_tally (command_name, run_mode, run_status, runs)
    SELECT run.command_name, run.run_mode, run.run_status, pg_catalog.count(*)
      FROM public.dot_iu_command_run AS run
     GROUP BY run.command_name, run.run_mode, run.run_status;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    SELECT coalesce(pg_catalog.max(run.run_id), 0) INTO v_folded_through
      FROM public.dot_iu_command_run AS run;
    -- Seal from the end of the chain, not from the old watermark: a watermark row that was
    -- missing comes back at 0, and what is sealed already is never sealed twice.
    SELECT GREATEST(v_folded_before, coalesce(pg_catalog.max(s.last_id), 0)) INTO v_sealed_through
      FROM public.dot_iu_ledger_seal AS s
     WHERE s.ledger = 'run';
    IF v_folded_through > v_sealed_through THEN
        PERFORM public.fn_dot_iu_ledger_seal('run', v_sealed_through + 1, v_folded_through);
    END IF;
    UPDATE public.dot_iu_command_run_tally_watermark
       SET folded_through = v_folded_through,
           candidate_through = NULL,
           candidate_writers = NULL,
           folded_at = pg_catalog.clock_timestamp();

    SELECT coalesce(pg_catalog.sum(t.runs), 0), pg_catalog.count(DISTINCT t.command_name)
      INTO v_runs, v_commands
      FROM public.dot_iu_command_run_tally AS t;

    RETURN pg_catalog.jsonb_build_object(
        'runs', v_runs,
        'commands', v_commands,
        'tally_rows', v_rows,
        'runs_before', v_runs_before,
        'folded_through', v_folded_through);
END
$function$;
