-- fn_iu_gate_state v1: the one definition of whether a gate reads open (docs/gates.md). One row
-- per gate of fn_iu_gate_classes() (or the one named; none for an unknown name), at the moment
-- of the call (clock_timestamp(), read once):
--   value        the dot_config value (NULL when the key is missing), present whether it is;
--   the gate's latest transition, by transition_id (never by a timestamp a writer could
--   choose): transition_id, action, approval_id, ttl_seconds, opened_at, expires_at;
--   window_live  that transition is an open whose window holds now: created no later than now,
--                expiring after now, and not more than 3600 seconds ahead (no approved window
--                is longer, so a row claiming a longer one is not a window);
--   reads_open   value is exactly 'true' AND window_live: what every gate reader returns, so an
--                expired window reads closed at once, before any watchdog runs, and a value set
--                to 'true' by hand, with no live open on record, reads closed;
--   changes_at   when reads_open changes by the clock alone (the window's end, or for a window
--                recorded ahead of time its start); NULL when only a write can change it.
-- Writes nothing.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_state(p_gate text DEFAULT NULL)
RETURNS TABLE (
    gate_key text,
    gate_class text,
    present boolean,
    value text,
    transition_id bigint,
    action text,
    approval_id text,
    ttl_seconds integer,
    opened_at timestamptz,
    expires_at timestamptz,
    window_live boolean,
    reads_open boolean,
    changes_at timestamptz
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT g.gate_key,
           g.gate_class,
           c.key IS NOT NULL,
           c.value,
           t.transition_id,
           t.action,
           t.approval_id,
           t.ttl_seconds,
           t.expires_at - pg_catalog.make_interval(secs => t.ttl_seconds),
           t.expires_at,
           coalesce(w.live, false),
           coalesce(c.value = 'true', false) AND coalesce(w.live, false),
           CASE
               WHEN c.value IS DISTINCT FROM 'true' OR t.action IS DISTINCT FROM 'open'
                    OR t.expires_at <= clock.at THEN NULL
               WHEN w.live THEN t.expires_at
               ELSE GREATEST(t.created_at, t.expires_at - interval '3600 seconds')
           END
      FROM public.fn_iu_gate_classes() AS g
     CROSS JOIN (SELECT pg_catalog.clock_timestamp() AS at) AS clock
      LEFT JOIN public.dot_config AS c ON c.key = g.gate_key
      LEFT JOIN LATERAL (
            SELECT tr.transition_id, tr.action, tr.approval_id, tr.ttl_seconds, tr.expires_at,
                   tr.created_at
              FROM public.iu_gate_transition AS tr
             WHERE tr.gate_key = g.gate_key
             ORDER BY tr.transition_id DESC
             LIMIT 1
           ) AS t ON true
     CROSS JOIN LATERAL (
            SELECT t.action = 'open'
                   AND t.created_at <= clock.at
                   AND t.expires_at > clock.at
                   AND t.expires_at <= clock.at + interval '3600 seconds' AS live
           ) AS w
     WHERE p_gate IS NULL OR g.gate_key = p_gate
$function$;
