-- fn_dot_iu_gate_guard v1: row trigger on public.dot_config (AFTER INSERT OR UPDATE, only for
-- rows whose new value is not 'false'; enabled ALWAYS, so session_replication_role = replica
-- does not silence it). The database's own rule for gates, whoever writes (docs/gates.md):
--   * a never-flip gate holds 'false' and nothing else: any other value is refused (42501),
--     the owner's writes included;
--   * a governable gate becomes exactly 'true' only through fn_iu_gate_open: the write must
--     come with the gate's latest transition (by transition_id) being an 'open' inserted by
--     the same (sub)transaction as this row version (the two rows' xmin are equal), which only
--     fn_iu_gate_open does; otherwise 42501. A gate that already held 'true' may keep it.
-- Writing 'false' (closing), any other value (which reads closed), and deleting a key stay
-- allowed: each of them fails closed. Keys that are not gates are not looked at.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_guard()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_class text;
    v_by_open boolean;
BEGIN
    SELECT g.gate_class INTO v_class
      FROM public.fn_iu_gate_classes() AS g
     WHERE g.gate_key = NEW.key;
    IF v_class IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_class = 'never-flip' THEN
        RAISE EXCEPTION 'never-flip gate % holds ''false'' and nothing else, not %',
                NEW.key, pg_catalog.quote_literal(NEW.value)
            USING ERRCODE = '42501',
                  HINT = 'Supply a real review_decision_id instead of bypassing review.';
    END IF;
    IF NEW.value IS DISTINCT FROM 'true'
       OR (TG_OP = 'UPDATE' AND OLD.key = NEW.key AND OLD.value = 'true') THEN
        RETURN NULL;
    END IF;

    SELECT t.action = 'open' AND t.xmin = c.xmin INTO v_by_open
      FROM (SELECT tr.action, tr.xmin
              FROM public.iu_gate_transition AS tr
             WHERE tr.gate_key = NEW.key
             ORDER BY tr.transition_id DESC
             LIMIT 1) AS t,
           (SELECT d.xmin FROM public.dot_config AS d WHERE d.key = NEW.key) AS c;
    IF NOT coalesce(v_by_open, false) THEN
        RAISE EXCEPTION 'gate % is set to ''true'' only by fn_iu_gate_open, with an approval and a window',
                NEW.key
            USING ERRCODE = '42501',
                  HINT = 'substrate gates open GATE --approval ID --ttl SECONDS --actor NAME --reason TEXT';
    END IF;
    RETURN NULL;
END
$function$;
