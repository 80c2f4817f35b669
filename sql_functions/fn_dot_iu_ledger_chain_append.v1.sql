-- fn_dot_iu_ledger_chain_append v1: appends one link to a ledger's seal chain in
-- public.dot_iu_ledger_seal and returns its seal_id (docs/seals.md). The one place that
-- computes a link's hash:
--   seal_sha256 = sha256 of the JSON array text of [prev_sha256, ledger, action, first_id,
--   last_id, row_count, column_count, rows_sha256, newest_at, sealed_at, session_login, actor,
--   reason, retired_before] (timestamps as UTC 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'; NULL as null),
-- where prev_sha256 is the chain's latest seal_sha256 (64 zeros for the first link). Every
-- field of the link is covered, so a link cannot be edited without breaking the chain, and the
-- JSON array keeps two fields from being shifted into each other. `substrate verify`
-- recomputes the same expression from the stored columns.
-- Appends to one ledger's chain serialize on a transaction-level advisory lock, so the chain
-- never forks (a unique index on (ledger, prev_sha256) would refuse a fork anyway).
-- Only the owner role may EXECUTE it: the seal and retire functions call it.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_ledger_chain_append(
    p_ledger text,
    p_action text,
    p_first_id bigint,
    p_last_id bigint,
    p_row_count bigint,
    p_column_count integer,
    p_rows_sha256 text,
    p_newest_at timestamptz,
    p_actor text DEFAULT NULL,
    p_reason text DEFAULT NULL,
    p_retired_before timestamptz DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_prev text;
    v_sealed_at timestamptz := pg_catalog.clock_timestamp();
    v_seal text;
    v_seal_id bigint;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('public.dot_iu_ledger_seal'),
                                             pg_catalog.hashtext(p_ledger));
    SELECT s.seal_sha256 INTO v_prev
      FROM public.dot_iu_ledger_seal AS s
     WHERE s.ledger = p_ledger
     ORDER BY s.seal_id DESC
     LIMIT 1;
    v_prev := coalesce(v_prev, pg_catalog.repeat('0', 64));

    v_seal := pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.jsonb_build_array(
        v_prev, p_ledger, p_action, p_first_id, p_last_id, p_row_count, p_column_count,
        p_rows_sha256,
        pg_catalog.to_char(p_newest_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        pg_catalog.to_char(v_sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        session_user, p_actor, p_reason,
        pg_catalog.to_char(p_retired_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text, 'UTF8')), 'hex');

    INSERT INTO public.dot_iu_ledger_seal
           (ledger, action, first_id, last_id, row_count, column_count, rows_sha256, newest_at,
            prev_sha256, seal_sha256, sealed_at, session_login, actor, reason, retired_before)
    VALUES (p_ledger, p_action, p_first_id, p_last_id, p_row_count, p_column_count,
            p_rows_sha256, p_newest_at, v_prev, v_seal, v_sealed_at, session_user, p_actor,
            p_reason, p_retired_before)
    RETURNING seal_id INTO v_seal_id;
    RETURN v_seal_id;
END
$function$;
