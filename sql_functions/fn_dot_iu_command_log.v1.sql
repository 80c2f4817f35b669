-- fn_dot_iu_command_log v1: the only writer of the run ledger public.dot_iu_command_run.
-- Ungated: a refused run is recordable while every gate is shut. Fail-closed on vocabulary:
-- once dot_iu_command_catalog holds any row, a command absent from it raises 23503 and writes
-- nothing. `mutating` comes from the catalog (true for an uncatalogued command while the catalog
-- is empty). The row's constraints check mode, status, their pairing, the md5 digest and the
-- actor. p_gate_snapshot NULL records the current value of every known gate.
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
    v_mutating boolean;
    v_run_id bigint;
BEGIN
    SELECT c.mutating
      INTO v_mutating
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = p_command_name;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM public.dot_iu_command_catalog) THEN
            RAISE EXCEPTION 'command % is not in the command catalog', p_command_name
                USING ERRCODE = '23503',
                      HINT = 'Add it to seeds/ and generate a seed revision (make seed-revision).';
        END IF;
        v_mutating := true;
    END IF;

    INSERT INTO public.dot_iu_command_run
           (command_name, run_mode, run_status, mutating, actor, params_digest,
            gate_snapshot, evidence)
    VALUES (p_command_name, p_run_mode, p_run_status, v_mutating, p_actor, p_params_digest,
            coalesce(p_gate_snapshot,
                     (SELECT coalesce(jsonb_object_agg(g.key, g.value ORDER BY g.key), '{}'::jsonb)
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
