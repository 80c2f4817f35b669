-- fn_dot_iu_command_run_tally_fold v3: v2, and each range it moves under the watermark is sealed
-- in the same statement sequence (docs/seals.md): the rows (old folded_through, new
-- folded_through] become one link of the run ledger's seal chain (fn_dot_iu_ledger_seal). The
-- fold is the moment a range becomes safe to seal: every transaction that could still write a
-- row of it has ended. Sealing reads the range once more (about 1,024 to 2,048 rows) and never
-- waits: the fold holds the watermark row, so folds, and therefore seals of the run ledger,
-- happen one at a time. A fold moves at most 16,384 ids (it stops short of the candidate and
-- keeps it for the next fold), so the logger call that runs it does bounded work even when a
-- long backlog built up (after an upgrade step held the watermark row, say): a backlog drains
-- over the following folds. v2's description follows.
-- (v2) fn_dot_iu_command_run_tally_fold: moves the tally's watermark. dot_iu_command_run_tally holds
-- the counts of every ledger row with run_id <= folded_through (in
-- dot_iu_command_run_tally_watermark); the views add the rows past it, read through the ledger's
-- primary key. A row may only fall below the watermark once the transaction that wrote it has
-- ended, or an in-flight write would be skipped for ever. So a fold works in two steps:
-- 1. promote: if a candidate was recorded by an earlier fold and none of the transactions that
--    were then writing the ledger (candidate_writers) still holds a lock on it, count the rows in
--    (folded_through, candidate_through] into the tally, in a statement whose snapshot is taken
--    after that check (so it sees every one of those writes that committed), and move
--    folded_through to candidate_through; otherwise keep the candidate for a later fold;
-- 2. record a candidate, when there is none: candidate_through := the ledger's sequence as it is
--    now, then candidate_writers := the transactions, other than this one, that hold a
--    RowExclusiveLock on the ledger (an INSERT takes that lock before it draws its run_id, so
--    every run_id <= candidate_through belongs to one of them or to a transaction that ended).
-- Returns how many ledger rows it moved under the watermark. Never waits: returns 0 when another
-- fold, a maintenance DELETE or a rebuild holds the watermark row, outside READ COMMITTED (an
-- older snapshot could miss committed writes), or when the watermark row is missing (the
-- rebuild puts it back). Called by the logger on about one run in 1024; an operator may call
-- it too (twice moves everything written before the first call, once its writers ended).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_run_tally_fold()
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_folded_through bigint;
    v_candidate_through bigint;
    v_candidate_writers text[];
    v_writing boolean;
    v_moved bigint := 0;
    v_promoted boolean := false;
    v_through bigint;
    c_most constant bigint := 16384;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN 0;
    END IF;
    SELECT w.folded_through, w.candidate_through, w.candidate_writers
      INTO v_folded_through, v_candidate_through, v_candidate_writers
      FROM public.dot_iu_command_run_tally_watermark AS w
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;

    IF v_candidate_through IS NOT NULL THEN
        SELECT EXISTS (
            SELECT 1
              FROM pg_catalog.pg_locks AS l
             WHERE l.locktype = 'relation'
               AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                                  WHERE d.datname = pg_catalog.current_database())
               AND l.relation = 'public.dot_iu_command_run'::pg_catalog.regclass
               AND l.virtualtransaction = ANY (v_candidate_writers))
          INTO v_writing;
        IF NOT v_writing THEN
            v_through := LEAST(v_candidate_through, v_folded_through + c_most);
            -- A new statement, so a new snapshot: every write at or below the candidate ended.
            WITH counted AS (
                SELECT run.command_name, run.run_mode, run.run_status,
                       pg_catalog.count(*) AS runs
                  FROM public.dot_iu_command_run AS run
                 WHERE run.run_id > v_folded_through
                   AND run.run_id <= v_through
                 GROUP BY run.command_name, run.run_mode, run.run_status
            ), folded AS (
                INSERT INTO public.dot_iu_command_run_tally AS t
                       (command_name, run_mode, run_status, runs)
                SELECT c.command_name, c.run_mode, c.run_status, c.runs
                  FROM counted AS c
                ON CONFLICT (command_name, run_mode, run_status)
                DO UPDATE SET runs = t.runs + EXCLUDED.runs
            )
            SELECT coalesce(pg_catalog.sum(c.runs), 0) INTO v_moved FROM counted AS c;
            IF v_through > v_folded_through THEN
                PERFORM public.fn_dot_iu_ledger_seal('run', v_folded_through + 1, v_through);
            END IF;
            v_folded_through := v_through;
            IF v_through = v_candidate_through THEN
                v_candidate_through := NULL;
            END IF;
            v_promoted := true;
        END IF;
    END IF;

    IF v_candidate_through IS NULL THEN
        v_candidate_through := GREATEST(
            v_folded_through,
            pg_catalog.pg_sequence_last_value(
                pg_catalog.pg_get_serial_sequence('public.dot_iu_command_run', 'run_id')
                    ::pg_catalog.regclass));
        -- After reading the sequence: a writer that drew a run_id at or below it is listed here
        -- unless it had already ended.
        SELECT coalesce(pg_catalog.array_agg(DISTINCT l.virtualtransaction), '{}'::text[])
          INTO v_candidate_writers
          FROM pg_catalog.pg_locks AS l
         WHERE l.locktype = 'relation'
           AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                              WHERE d.datname = pg_catalog.current_database())
           AND l.relation = 'public.dot_iu_command_run'::pg_catalog.regclass
           AND l.mode = 'RowExclusiveLock'
           AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid();
    END IF;

    UPDATE public.dot_iu_command_run_tally_watermark
       SET folded_through = v_folded_through,
           candidate_through = v_candidate_through,
           candidate_writers = v_candidate_writers,
           folded_at = CASE WHEN v_promoted THEN pg_catalog.clock_timestamp() ELSE folded_at END;
    RETURN v_moved;
END
$function$;
