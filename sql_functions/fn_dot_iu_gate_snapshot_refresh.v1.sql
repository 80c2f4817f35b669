-- fn_dot_iu_gate_snapshot_refresh v1: recomputes public.dot_iu_gate_snapshot, the current value
-- of every known gate as one jsonb object {key: value} (the gates of fn_iu_gate_classes(), the
-- ones dot_config holds), and returns it. The logger copies that row into each run it records
-- instead of aggregating dot_config on every call. Called by the statement trigger
-- tg_dot_config_gate_snapshot after every write to dot_config, in the writer's transaction (so
-- the writer's own later runs see its change, and the change and the snapshot commit together);
-- an operator may call it too. It locks the snapshot row first and reads dot_config in a later
-- statement: under READ COMMITTED that read sees every gate change committed before the lock
-- was granted, so two writers of different gates cannot lose each other's change; under
-- REPEATABLE READ or SERIALIZABLE a concurrent refresh makes the lock raise 40001 instead.
-- A missing row is inserted again.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_snapshot_refresh()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_snapshot jsonb;
BEGIN
    PERFORM 1 FROM public.dot_iu_gate_snapshot AS s FOR UPDATE;

    SELECT coalesce(pg_catalog.jsonb_object_agg(g.key, g.value), '{}'::jsonb)
      INTO v_snapshot
      FROM public.dot_config AS g
     WHERE g.key IN (SELECT c.gate_key FROM public.fn_iu_gate_classes() AS c);

    INSERT INTO public.dot_iu_gate_snapshot AS s (singleton, snapshot, refreshed_at)
    VALUES (true, v_snapshot, pg_catalog.clock_timestamp())
    ON CONFLICT (singleton)
    DO UPDATE SET snapshot = EXCLUDED.snapshot, refreshed_at = EXCLUDED.refreshed_at;
    RETURN v_snapshot;
END
$function$;
