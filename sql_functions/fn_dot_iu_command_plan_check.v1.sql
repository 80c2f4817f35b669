-- fn_dot_iu_command_plan_check v1: may this plan be applied now? (docs/runtime.md, "Plan-bound
-- applies"). The operator runtime calls it first in a plan-bound apply's transaction, before
-- fn_dot_iu_runtime_apply_begin and the command's statement, so a plan the ledger would refuse
-- is refused before any command SQL runs (a refused target call rolls back, but what a
-- transaction cannot undo, a sequence's numbers, stays). The checks, SQLSTATEs and messages are
-- the logger's own (fn_dot_iu_command_log, which still makes them when the applied row is
-- written, for every caller): the run is a 'planned' plan of this command with this
-- params_digest (22023), younger than one hour (55000) and made against the same catalog row
-- (55000), and no apply has used it (23505). Returns the plan's correlation id. Reads the
-- ledger, which its callers may not (SECURITY DEFINER, owner role, pinned search_path); writes
-- nothing and locks nothing: two racing applies of one plan both pass it, and the ledger's
-- dot_iu_command_plan_use lets exactly one of them commit.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_plan_check(p_plan_run_id bigint,
                                                               p_command_name text,
                                                               p_params_digest text)
RETURNS uuid
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_plan record;
BEGIN
    SELECT r.run_id, r.command_name, r.run_mode, r.run_status, r.params_digest, r.created_at,
           r.correlation_id, r.evidence ->> 'catalog_md5' AS catalog_md5
      INTO v_plan
      FROM public.dot_iu_command_run AS r
     WHERE r.run_id = p_plan_run_id;
    IF v_plan.run_id IS NULL OR v_plan.run_mode <> 'plan' OR v_plan.run_status <> 'planned'
       OR v_plan.command_name IS DISTINCT FROM p_command_name
       OR v_plan.params_digest IS DISTINCT FROM p_params_digest THEN
        RAISE EXCEPTION 'run % is not a plan of % with these parameters', p_plan_run_id, p_command_name
            USING ERRCODE = '22023';
    END IF;
    IF v_plan.created_at <= pg_catalog.clock_timestamp() - interval '1 hour' THEN
        RAISE EXCEPTION 'plan % was made at %, more than an hour ago', v_plan.run_id, v_plan.created_at
            USING ERRCODE = '55000',
                  HINT = 'Plan again.';
    END IF;
    IF v_plan.catalog_md5 IS DISTINCT FROM (
            SELECT pg_catalog.md5(ROW(c.command_name, c.category, c.mutating, c.reversible,
                                      c.target_function, c.inverse_command,
                                      c.required_gates)::text)
              FROM public.dot_iu_command_catalog AS c
             WHERE c.command_name = p_command_name) THEN
        RAISE EXCEPTION 'the catalog row of % changed since plan %', p_command_name, v_plan.run_id
            USING ERRCODE = '55000',
                  HINT = 'Plan again.';
    END IF;
    IF EXISTS (SELECT 1 FROM public.dot_iu_command_plan_use AS u
                WHERE u.plan_run_id = v_plan.run_id) THEN
        RAISE EXCEPTION 'plan % was applied already', v_plan.run_id
            USING ERRCODE = '23505',
                  HINT = 'A plan is applied at most once: plan again.';
    END IF;
    RETURN v_plan.correlation_id;
END
$function$;
