-- fn_dot_iu_command_run_tally_fold v1: moves every delta this transaction can see from
-- dot_iu_command_run_tally_delta into dot_iu_command_run_tally (one DELETE ... RETURNING, summed
-- per key, upserted) and returns how many deltas it moved. Deltas of transactions still in
-- flight are invisible to it and wait for a later fold; a fold that rolls back moves nothing.
-- Does nothing (returns 0) when another transaction holds the fold lock (one fold at a time;
-- nobody waits), when this transaction already folded (a bulk load folds once, not once per
-- 1024 rows over its own growing deltas), or outside READ COMMITTED (an older snapshot could
-- try to delete deltas a later fold already moved). Called by fn_dot_iu_command_run_tally_insert;
-- an operator may call it too.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_fold()
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_moved bigint;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN 0;
    END IF;
    IF pg_catalog.current_setting('dot_iu.tally_folded_by', true)
           = pg_catalog.pg_current_xact_id()::text THEN
        RETURN 0;
    END IF;
    IF NOT pg_catalog.pg_try_advisory_xact_lock(
               pg_catalog.hashtext('substrate.dot_iu_command_run_tally')) THEN
        RETURN 0;
    END IF;
    -- Session-level on purpose: a SET LOCAL would end with this function; the value (this
    -- transaction's id) is what limits it to one fold per transaction.
    PERFORM pg_catalog.set_config('dot_iu.tally_folded_by',
                                  pg_catalog.pg_current_xact_id()::text, false);

    WITH moved AS (
        DELETE FROM public.dot_iu_command_run_tally_delta AS d
        RETURNING d.command_name, d.run_mode, d.run_status, d.runs
    ), summed AS (
        SELECT m.command_name, m.run_mode, m.run_status,
               pg_catalog.sum(m.runs)::bigint AS runs, pg_catalog.count(*) AS deltas
          FROM moved AS m
         GROUP BY m.command_name, m.run_mode, m.run_status
    ), folded AS (
        INSERT INTO public.dot_iu_command_run_tally AS t
               (command_name, run_mode, run_status, runs)
        SELECT s.command_name, s.run_mode, s.run_status, s.runs
          FROM summed AS s
        ON CONFLICT (command_name, run_mode, run_status)
        DO UPDATE SET runs = t.runs + EXCLUDED.runs
    )
    SELECT coalesce(pg_catalog.sum(s.deltas), 0) INTO v_moved FROM summed AS s;
    RETURN v_moved;
END
$function$;
