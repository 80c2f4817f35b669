-- fn_dot_iu_gate_open_keys v1: the keys of a gate snapshot that read open ('true', as ->> reads
-- it), sorted in byte order (COLLATE "C", so the result depends on no database collation);
-- '{}' when none does and for a JSON value that is not an object, which opens nothing (the
-- table's ck_dot_iu_gate_snapshot_object then refuses the row, 23514); NULL for NULL (STRICT).
-- The expression of dot_iu_gate_snapshot.open_gates, a column generated from the snapshot
-- whenever the snapshot is written, so the logger's gate rule is one array containment over it
-- instead of a lookup of each gate in the JSON (docs/objects.md, "dot_iu_gate_snapshot").
-- IMMUTABLE (it reads nothing but its argument), as a generated column needs; only the owner
-- role may EXECUTE it (the snapshot row's writers run as it). A stored generated column keeps
-- its value when this function is replaced: a revision that replaces it rewrites the row in the
-- same step (SELECT fn_dot_iu_gate_snapshot_refresh()), and substrate verify recomputes the
-- column from the snapshot without it.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_open_keys(p_snapshot jsonb)
RETURNS text[]
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(pg_catalog.array_agg(e.key ORDER BY e.key COLLATE "C"), '{}'::text[])
      FROM pg_catalog.jsonb_each_text(CASE pg_catalog.jsonb_typeof(p_snapshot)
                                          WHEN 'object' THEN p_snapshot
                                          ELSE '{}'::jsonb END) AS e
     WHERE e.value = 'true'
$function$;
