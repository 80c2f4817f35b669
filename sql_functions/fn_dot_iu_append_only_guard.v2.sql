-- fn_dot_iu_append_only_guard v2: trigger function that keeps a ledger append-only (the run
-- ledger, the transition ledger, the seal chain). UPDATE is always refused; DELETE and TRUNCATE
-- are refused unless the deleting transaction itself turned maintenance on, by naming itself:
--   SELECT pg_catalog.set_config('dot_iu.ledger_maintenance', pg_catalog.pg_current_xact_id()::text, true);
-- v1 accepted the value 'on', which ALTER DATABASE ... SET or ALTER ROLE ... SET could leave on
-- for every session; a transaction id matches one transaction only (docs/seals.md). A raw
-- maintenance DELETE of sealed rows still breaks their seal, and verify reports it; the lawful
-- way to remove old rows is fn_dot_iu_ledger_retire. SQLSTATE 55000.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_append_only_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION '%.% is append-only: UPDATE is refused', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = '55000',
                  HINT = 'Ledger rows are evidence; record a new row instead.';
    END IF;
    IF pg_catalog.current_setting('dot_iu.ledger_maintenance', true)
       IS DISTINCT FROM pg_catalog.pg_current_xact_id()::text THEN
        RAISE EXCEPTION '%.% is append-only: % is refused outside maintenance',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
            USING ERRCODE = '55000',
                  HINT = 'Old rows go with fn_dot_iu_ledger_retire. For a raw delete, turn maintenance on in the deleting transaction: SELECT set_config(''dot_iu.ledger_maintenance'', pg_current_xact_id()::text, true).';
    END IF;
    IF TG_LEVEL = 'ROW' THEN
        RETURN OLD;
    END IF;
    RETURN NULL;
END
$function$;
