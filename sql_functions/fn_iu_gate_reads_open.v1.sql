-- fn_iu_gate_reads_open v1: whether one gate reads open now (docs/gates.md, "Reads open"): the
-- one-gate path of fn_iu_gate_state's reads_open, for the readers and the runtime's apply, which
-- ask about one gate at a time and often. True only when the gate is one of
-- fn_iu_gate_classes(), dot_config holds exactly 'true' for it, and its latest transition (by
-- transition_id, never by a timestamp a writer could choose) is an open whose window holds at
-- clock_timestamp(): created no later than now, expiring after now and not more than 3600
-- seconds ahead. Anything else, an unknown gate included: false. The same rule as
-- fn_iu_gate_state's reads_open, written as two look-ups in PL/pgSQL so their plans are cached
-- for the session; the tests hold the two equal in every state a gate can be in. Writes
-- nothing. Only the owner role may EXECUTE it: the readers and apply_begin call it as the owner.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_reads_open(p_gate text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_latest record;
BEGIN
    IF NOT EXISTS (SELECT 1
                     FROM public.fn_iu_gate_classes() AS g
                     JOIN public.dot_config AS c ON c.key = g.gate_key
                    WHERE g.gate_key = p_gate AND c.value = 'true') THEN
        RETURN false;
    END IF;
    SELECT t.action, t.created_at, t.expires_at INTO v_latest
      FROM public.iu_gate_transition AS t
     WHERE t.gate_key = p_gate
     ORDER BY t.transition_id DESC
     LIMIT 1;
    RETURN coalesce(v_latest.action = 'open'
                    AND v_latest.created_at <= v_now
                    AND v_latest.expires_at > v_now
                    AND v_latest.expires_at <= v_now + interval '3600 seconds', false);
END
$function$;
