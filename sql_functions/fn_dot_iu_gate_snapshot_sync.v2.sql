-- fn_dot_iu_gate_snapshot_sync v2: the triggers that keep public.dot_iu_gate_snapshot in step
-- call it, in the writer's transaction:
--   * row trigger on dot_config (AFTER INSERT OR UPDATE OR DELETE): refreshes only when the
--     row's key, before or after, is a gate. v1 was a statement trigger that refreshed (and
--     locked the snapshot row) after every write to dot_config, so a writer of any IU Core
--     setting made every gate call, the watchdog's included, wait for it to commit;
--   * statement triggers on dot_config (AFTER TRUNCATE) and on iu_gate_transition (AFTER
--     INSERT, a window opened or closed): always refresh.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_snapshot_sync()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    -- Nested, not one condition: a statement-level call (on iu_gate_transition too) must never
    -- prepare an expression that names dot_config's columns.
    IF TG_LEVEL = 'ROW' THEN
        IF NOT EXISTS (
                SELECT 1
                  FROM public.fn_iu_gate_classes() AS g
                 WHERE g.gate_key = CASE WHEN TG_OP = 'DELETE' THEN OLD.key ELSE NEW.key END
                    OR g.gate_key = CASE WHEN TG_OP = 'UPDATE' THEN OLD.key END) THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM public.fn_dot_iu_gate_snapshot_refresh();
    RETURN NULL;
END
$function$;
