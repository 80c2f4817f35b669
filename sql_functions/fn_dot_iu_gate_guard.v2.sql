-- fn_dot_iu_gate_guard v2: row trigger on public.dot_config (AFTER INSERT OR UPDATE, only for
-- rows whose new value is not 'false'; enabled ALWAYS, so session_replication_role = replica
-- does not silence it). The database's own rule for gates, whoever writes (docs/gates.md):
--   * a never-flip gate holds 'false' and nothing else: any other value is refused (42501),
--     the owner's writes included;
--   * a governable gate becomes exactly 'true' only through fn_iu_gate_open, which v2 proves
--     by the call stack (PG_CONTEXT) as well as by the ledger: the statement that fired this
--     trigger must be fn_iu_gate_open's own UPDATE of dot_config, run by
--     public.fn_iu_gate_open(text,text,text,text,integer) itself; and the gate's latest
--     transition (by transition_id) must be an 'open' inserted by the same (sub)transaction as
--     this row version (equal xmin). v1 checked the ledger only, so an owner who inserted an
--     'open' transition by hand could set 'true' beside it. The call stack cannot be forged by
--     a caller: every PL/pgSQL frame names its function schema-qualified (the functions pin
--     their search_path) and a quoted name always shows its quotes, and the statement text is
--     compared whole, so nothing a caller writes can pose as the frame that follows it.
--     Replacing fn_iu_gate_open itself is DDL, which `substrate drift` reports.
--     fn_iu_gate_open's UPDATE text below is part of this contract: a later version of the
--     function keeps it byte for byte, or comes with a new version of this guard.
--     Any other write of 'true' (an INSERT included) is refused with 42501. A gate that
--     already held 'true' may keep it.
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
    c_caller constant text :=
        'SQL statement "UPDATE public.dot_config' || E'\n'
        || '       SET value = ''true'', updated_at = pg_catalog.now()' || E'\n'
        || '     WHERE key = p_gate"' || E'\n'
        || 'PL/pgSQL function public.fn_iu_gate_open(text,text,text,text,integer) line ';
    v_class text;
    v_stack text;
    v_callers text;
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

    -- The first line is this trigger's own frame; what follows it names the statement that
    -- fired the trigger and the function that ran that statement.
    GET DIAGNOSTICS v_stack = PG_CONTEXT;
    v_callers := pg_catalog.substr(v_stack, pg_catalog.strpos(v_stack, E'\n') + 1);
    v_by_open := TG_OP = 'UPDATE'
        AND pg_catalog.strpos(v_stack, E'\n') > 0
        AND pg_catalog.left(v_callers, pg_catalog.length(c_caller)) = c_caller
        AND pg_catalog.substr(v_callers, pg_catalog.length(c_caller) + 1)
            ~ '^[0-9]+ at SQL statement(\n|$)';

    IF v_by_open THEN
        SELECT t.action = 'open' AND t.xmin = c.xmin INTO v_by_open
          FROM (SELECT tr.action, tr.xmin
                  FROM public.iu_gate_transition AS tr
                 WHERE tr.gate_key = NEW.key
                 ORDER BY tr.transition_id DESC
                 LIMIT 1) AS t,
               (SELECT d.xmin FROM public.dot_config AS d WHERE d.key = NEW.key) AS c;
    END IF;
    IF NOT coalesce(v_by_open, false) THEN
        RAISE EXCEPTION 'gate % is set to ''true'' only by fn_iu_gate_open, with an approval and a window',
                NEW.key
            USING ERRCODE = '42501',
                  HINT = 'substrate gates open GATE --approval ID --ttl SECONDS --actor NAME --reason TEXT';
    END IF;
    RETURN NULL;
END
$function$;
