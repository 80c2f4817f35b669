-- fn_dot_iu_gate_snapshot_refresh v2: recomputes public.dot_iu_gate_snapshot and returns the
-- snapshot. v2 records what the gate readers say, not the raw values (docs/gates.md): for every
-- gate of fn_iu_gate_classes(), 'true' when fn_iu_gate_state says it reads open, else 'false'
-- (a missing key included), and valid_until, the earliest moment at which one of those
-- readings changes by the clock alone (a window's end), 'infinity' when none does. The logger
-- copies the row while clock_timestamp() < valid_until and computes the readings afresh after
-- it. Called by the triggers on dot_config (a gate key written) and on iu_gate_transition (a
-- transition recorded), in the writer's transaction; an operator may call it too. As in v1 it
-- locks the row first and reads in a later statement, so two writers cannot lose each other's
-- change; a missing row is inserted again.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_snapshot_refresh()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_snapshot jsonb;
    v_valid_until timestamptz;
BEGIN
    PERFORM 1 FROM public.dot_iu_gate_snapshot AS s FOR UPDATE;

    SELECT coalesce(pg_catalog.jsonb_object_agg(
                        s.gate_key, CASE WHEN s.reads_open THEN 'true' ELSE 'false' END),
                    '{}'::jsonb),
           coalesce(pg_catalog.min(s.changes_at), 'infinity')
      INTO v_snapshot, v_valid_until
      FROM public.fn_iu_gate_state(NULL) AS s;

    INSERT INTO public.dot_iu_gate_snapshot AS s (singleton, snapshot, refreshed_at, valid_until)
    VALUES (true, v_snapshot, pg_catalog.clock_timestamp(), v_valid_until)
    ON CONFLICT (singleton)
    DO UPDATE SET snapshot = EXCLUDED.snapshot, refreshed_at = EXCLUDED.refreshed_at,
                  valid_until = EXCLUDED.valid_until;
    RETURN v_snapshot;
END
$function$;
