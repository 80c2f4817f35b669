-- fn_dot_iu_ledger_seal v1: seals the rows of one ledger ('run': dot_iu_command_run,
-- 'transition': iu_gate_transition) whose ids lie in [p_first_id, p_last_id], as one link of
-- that ledger's chain (fn_dot_iu_ledger_chain_append), and returns the seal_id (docs/seals.md).
-- rows_sha256 = sha256 of the rows' record text (row::text, with DateStyle ISO, YMD and
-- TimeZone UTC, pinned here) joined by newlines in id order; '' for a range holding no row
-- (ids taken by rolled-back writes). column_count records how many columns the rows had, so a
-- column added later (nullable, NULL in these rows) or dropped later (NULL in these rows)
-- changes nothing for this seal: verify pads or trims the trailing empty fields. newest_at is
-- the newest created_at of the range (retirement picks whole ranges older than a moment).
-- Callers: the tally fold and rebuild (the run ledger, up to the watermark, so every write in
-- the range has ended), the insert trigger on iu_gate_transition (each row as it is written),
-- and the sealing of existing rows by 0012_ledger_seals. Only the owner role may EXECUTE it.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_ledger_seal(
    p_ledger text,
    p_first_id bigint,
    p_last_id bigint
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
AS $function$
DECLARE
    v_rows bigint;
    v_newest timestamptz;
    v_sha256 text;
    v_columns integer;
BEGIN
    IF p_ledger = 'run' THEN
        SELECT pg_catalog.count(*), pg_catalog.max(r.created_at),
               pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                   coalesce(pg_catalog.string_agg(r::text, E'\n' ORDER BY r.run_id), ''),
                   'UTF8')), 'hex')
          INTO v_rows, v_newest, v_sha256
          FROM public.dot_iu_command_run AS r
         WHERE r.run_id >= p_first_id AND r.run_id <= p_last_id;
        v_columns := (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = 'public.dot_iu_command_run'::pg_catalog.regclass
                         AND a.attnum > 0 AND NOT a.attisdropped);
    ELSIF p_ledger = 'transition' THEN
        SELECT pg_catalog.count(*), pg_catalog.max(t.created_at),
               pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                   coalesce(pg_catalog.string_agg(t::text, E'\n' ORDER BY t.transition_id), ''),
                   'UTF8')), 'hex')
          INTO v_rows, v_newest, v_sha256
          FROM public.iu_gate_transition AS t
         WHERE t.transition_id >= p_first_id AND t.transition_id <= p_last_id;
        v_columns := (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = 'public.iu_gate_transition'::pg_catalog.regclass
                         AND a.attnum > 0 AND NOT a.attisdropped);
    ELSE
        RAISE EXCEPTION 'ledger must be run or transition, got %',
                coalesce(pg_catalog.quote_literal(p_ledger), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN public.fn_dot_iu_ledger_chain_append(
        p_ledger, 'seal', p_first_id, p_last_id, v_rows, v_columns, v_sha256, v_newest);
END
$function$;
