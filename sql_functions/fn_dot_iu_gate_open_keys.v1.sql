-- fn_dot_iu_gate_open_keys v1: the keys of a gate snapshot that read open ('true'), sorted;
-- '{}' when none does, and for anything but a JSON object, which opens nothing (the table's
-- ck_dot_iu_gate_snapshot_object then refuses the row, 23514). The expression of
-- dot_iu_gate_snapshot.open_gates, a column generated from the snapshot itself, so the two
-- cannot disagree: the logger's gate rule is one array containment over it instead of a lookup
-- of each gate in the JSON (docs/objects.md, "dot_iu_gate_snapshot"). IMMUTABLE (it reads
-- nothing but its argument), as a generated column needs; only the owner role may EXECUTE it
-- (the snapshot row's writers run as it).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_open_keys(p_snapshot jsonb)
RETURNS text[]
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(pg_catalog.array_agg(e.key ORDER BY e.key), '{}'::text[])
      FROM pg_catalog.jsonb_each_text(CASE pg_catalog.jsonb_typeof(p_snapshot)
                                          WHEN 'object' THEN p_snapshot
                                          ELSE '{}'::jsonb END) AS e
     WHERE e.value = 'true'
$function$;
