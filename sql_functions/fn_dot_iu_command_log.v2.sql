-- fn_dot_iu_command_log v2: the only writer of the run ledger public.dot_iu_command_run.
-- Same signature and contract as v1: ungated (a refused run is recordable while every gate is
-- shut); fail-closed on vocabulary (once dot_iu_command_catalog holds any row, a command absent
-- from it raises 23503 and writes nothing); `mutating` comes from the catalog (true for an
-- uncatalogued command while the catalog is empty); the row's constraints check mode, status,
-- their pairing, the md5 digest and the actor; p_gate_snapshot NULL records the current value of
-- every known gate. Faster shape than v1: a catalogued command is looked up and written by ONE
-- statement (INSERT ... SELECT from the catalog), and the gate snapshot is aggregated without a
-- sort (jsonb keeps object keys in its own order, so ORDER BY changed nothing). The run tally
-- behind the views is kept by triggers on the ledger, not here, so direct writes count too.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_log(
    p_command_name text,
    p_run_mode text,
    p_run_status text,
    p_actor text,
    p_params_digest text,
    p_evidence jsonb DEFAULT '{}'::jsonb,
    p_gate_snapshot jsonb DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_run_id bigint;
BEGIN
    INSERT INTO public.dot_iu_command_run
           (command_name, run_mode, run_status, mutating, actor, params_digest,
            gate_snapshot, evidence)
    SELECT p_command_name, p_run_mode, p_run_status, c.mutating, p_actor, p_params_digest,
           coalesce(p_gate_snapshot,
                    (SELECT coalesce(pg_catalog.jsonb_object_agg(g.key, g.value), '{}'::jsonb)
                       FROM public.dot_config AS g
                      WHERE g.key IN ('iu_core.composer_enabled',
                                      'iu_core.structure_ops_enabled',
                                      'iu_core.delivery_enabled',
                                      'iu_core.three_axis_auto_refresh_enabled',
                                      'queue.job_substrate.enabled',
                                      'queue.dlq.replay_enabled',
                                      'iu_enact.allow_no_review_decision',
                                      'iu_core.vector_sync_enabled',
                                      'iu_core.operator_runtime_enabled'))),
           coalesce(p_evidence, '{}'::jsonb)
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = p_command_name
    RETURNING run_id INTO v_run_id;
    IF FOUND THEN
        RETURN v_run_id;
    END IF;

    IF EXISTS (SELECT 1 FROM public.dot_iu_command_catalog) THEN
        RAISE EXCEPTION 'command % is not in the command catalog', p_command_name
            USING ERRCODE = '23503',
                  HINT = 'Add it to seeds/ and generate a seed revision (make seed-revision).';
    END IF;

    -- The catalog is empty: record the run as mutating (the vocabulary is not loaded yet).
    INSERT INTO public.dot_iu_command_run
           (command_name, run_mode, run_status, mutating, actor, params_digest,
            gate_snapshot, evidence)
    VALUES (p_command_name, p_run_mode, p_run_status, true, p_actor, p_params_digest,
            coalesce(p_gate_snapshot,
                     (SELECT coalesce(pg_catalog.jsonb_object_agg(g.key, g.value), '{}'::jsonb)
                        FROM public.dot_config AS g
                       WHERE g.key IN ('iu_core.composer_enabled',
                                       'iu_core.structure_ops_enabled',
                                       'iu_core.delivery_enabled',
                                       'iu_core.three_axis_auto_refresh_enabled',
                                       'queue.job_substrate.enabled',
                                       'queue.dlq.replay_enabled',
                                       'iu_enact.allow_no_review_decision',
                                       'iu_core.vector_sync_enabled',
                                       'iu_core.operator_runtime_enabled'))),
            coalesce(p_evidence, '{}'::jsonb))
    RETURNING run_id INTO v_run_id;

    RETURN v_run_id;
END
$function$;
