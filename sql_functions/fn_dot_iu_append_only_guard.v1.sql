-- fn_dot_iu_append_only_guard v1: trigger function that keeps a ledger append-only.
-- UPDATE is always refused; DELETE and TRUNCATE are refused unless the transaction declared
-- maintenance with SET LOCAL dot_iu.ledger_maintenance = 'on'. SQLSTATE 55000.
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
    IF coalesce(current_setting('dot_iu.ledger_maintenance', true), '') <> 'on' THEN
        RAISE EXCEPTION '%.% is append-only: % is refused outside maintenance',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
            USING ERRCODE = '55000',
                  HINT = 'Run SET LOCAL dot_iu.ledger_maintenance = ''on'' in the maintenance transaction.';
    END IF;
    IF TG_LEVEL = 'ROW' THEN
        RETURN OLD;
    END IF;
    RETURN NULL;
END
$function$;
