-- fn_dot_iu_ledger_seal_guard v1: trigger function of the seal chains (public.dot_iu_ledger_seal),
-- BEFORE UPDATE OR DELETE (row) and BEFORE TRUNCATE (statement). A link is never changed and
-- never removed, maintenance or not: retirement appends a 'retire' link and keeps every link
-- before it, and the downgrade of 0012_ledger_seals drops the table whole. Until
-- 0016_locks_and_chains the table shared the ledgers' guard, whose maintenance switch let the
-- owner delete the newest links (docs/seals.md). SQLSTATE 55000.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_ledger_seal_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    RAISE EXCEPTION '%.% holds the seal chains: % is refused, maintenance or not',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = '55000',
              HINT = 'Links are only ever appended; old rows go through fn_dot_iu_ledger_retire, which appends a retire link.';
END
$function$;
