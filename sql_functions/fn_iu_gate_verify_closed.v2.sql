-- fn_iu_gate_verify_closed v2: report the safety of every governable and never-flip gate, or of
-- the one gate named (docs/gates.md). Writes nothing. An unknown gate name raises 22023.
-- v2 over v1: built on fn_iu_gate_state, so a gate's window is its latest transition by
-- transition_id and each entry also says whether the gate reads open.
-- Returns {"all_safe", "all_governed_closed", "never_flip_intact", "checked_at", "gates": [...]}
-- with one entry per gate, governable first, each ordered by key:
--   {"gate", "class", "present", "value", "open", "reads_open", "safe", "window", "orphaned"}
--   open      : the value is exactly 'true';
--   reads_open: what the gate's reader returns (open inside a live window);
--   safe      : not open (a governable gate closed, a never-flip gate intact);
--   window    : the gate's latest transition when it is an open: approval_id, ttl_seconds,
--               opened_at, expires_at, live; else null;
--   orphaned  : a governable gate open without a live window (what fn_iu_gate_watchdog closes).
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
                pg_catalog.quote_literal(pg_catalog.left(p_gate, 200))
            USING ERRCODE = '22023';
    END IF;

    WITH report AS (
        SELECT s.gate_key,
               s.gate_class,
               s.present,
               s.value,
               coalesce(s.value = 'true', false) AS open,
               s.reads_open,
               CASE WHEN s.action = 'open' THEN pg_catalog.jsonb_build_object(
                   'approval_id', s.approval_id, 'ttl_seconds', s.ttl_seconds,
                   'opened_at', s.opened_at, 'expires_at', s.expires_at,
                   'live', s.window_live) END AS gate_window
          FROM public.fn_iu_gate_state(p_gate) AS s
    )
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'gate', r.gate_key,
               'class', r.gate_class,
               'present', r.present,
               'value', r.value,
               'open', r.open,
               'reads_open', r.reads_open,
               'safe', NOT r.open,
               'window', r.gate_window,
               'orphaned', r.gate_class = 'governable' AND r.open AND NOT r.reads_open)
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
