-- fn_dot_iu_ledger_seal_transition v1: row trigger (AFTER INSERT ON iu_gate_transition) that
-- seals each transition as it is written, in the writer's transaction: the transition ledger's
-- writers serialize, so it may chain every row (docs/seals.md). A row written with this
-- trigger disabled (or in replica mode) is sealed by nobody, and verify names it.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_ledger_seal_transition()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM public.fn_dot_iu_ledger_seal('transition', NEW.transition_id, NEW.transition_id);
    RETURN NULL;
END
$function$;
