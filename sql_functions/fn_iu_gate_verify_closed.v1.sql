-- fn_iu_gate_verify_closed v1: report the safety of every governable and never-flip gate, or of
-- the one gate named (SPEC 3.4). Writes nothing. An unknown gate name raises 22023.
-- Returns {"all_safe", "all_governed_closed", "never_flip_intact", "checked_at", "gates": [...]}
-- with one entry per gate, governable first, each ordered by key:
--   {"gate", "class", "present", "value", "open", "safe", "window", "orphaned"}
--   open     : the value is exactly 'true' (what the fail-closed readers read as on);
--   safe     : not open (a governable gate closed, a never-flip gate intact);
--   window   : the gate's latest transition when it is an open: approval_id, ttl_seconds,
--              opened_at, expires_at, live (expires_at > clock_timestamp()); else null;
--   orphaned : a governable gate open without a live window on record (what
--              fn_iu_gate_watchdog closes).
-- all_governed_closed and never_flip_intact are true when every reported gate of that class is
-- safe (vacuously true when none is reported); all_safe is both.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_verify_closed(p_gate text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_gates jsonb;
    v_governed_closed boolean;
    v_never_flip_intact boolean;
BEGIN
    IF p_gate IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.fn_iu_gate_classes() AS g WHERE g.gate_key = p_gate) THEN
        RAISE EXCEPTION 'gate % is not a known gate: unknown means deny',
                pg_catalog.quote_literal(p_gate)
            USING ERRCODE = '22023';
    END IF;

    WITH report AS (
        SELECT g.gate_key,
               g.gate_class,
               c.key IS NOT NULL AS present,
               c.value,
               coalesce(c.value = 'true', false) AS open,
               w.gate_window
          FROM public.fn_iu_gate_classes() AS g
          LEFT JOIN public.dot_config AS c ON c.key = g.gate_key
          LEFT JOIN LATERAL (
                SELECT pg_catalog.jsonb_build_object(
                           'approval_id', t.approval_id, 'ttl_seconds', t.ttl_seconds,
                           'opened_at', t.expires_at - pg_catalog.make_interval(secs => t.ttl_seconds),
                           'expires_at', t.expires_at,
                           'live', t.expires_at > pg_catalog.clock_timestamp()) AS gate_window
                  FROM (SELECT tr.action, tr.approval_id, tr.ttl_seconds, tr.expires_at
                          FROM public.iu_gate_transition AS tr
                         WHERE tr.gate_key = g.gate_key
                         ORDER BY tr.created_at DESC, tr.transition_id DESC
                         LIMIT 1) AS t
                 WHERE t.action = 'open'
               ) AS w ON true
         WHERE p_gate IS NULL OR g.gate_key = p_gate
    )
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'gate', r.gate_key,
               'class', r.gate_class,
               'present', r.present,
               'value', r.value,
               'open', r.open,
               'safe', NOT r.open,
               'window', r.gate_window,
               'orphaned', r.gate_class = 'governable' AND r.open
                           AND NOT coalesce((r.gate_window ->> 'live')::boolean, false))
             ORDER BY r.gate_class, r.gate_key), '[]'::jsonb),
           coalesce(pg_catalog.bool_and(NOT r.open) FILTER (WHERE r.gate_class = 'governable'), true),
           coalesce(pg_catalog.bool_and(NOT r.open) FILTER (WHERE r.gate_class = 'never-flip'), true)
      INTO v_gates, v_governed_closed, v_never_flip_intact
      FROM report AS r;

    RETURN pg_catalog.jsonb_build_object(
        'all_safe', v_governed_closed AND v_never_flip_intact,
        'all_governed_closed', v_governed_closed,
        'never_flip_intact', v_never_flip_intact,
        'checked_at', pg_catalog.clock_timestamp(),
        'gates', v_gates);
END
$function$;
