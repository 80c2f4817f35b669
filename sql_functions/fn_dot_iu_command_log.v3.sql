-- fn_dot_iu_command_log v3: the only writer of the run ledger public.dot_iu_command_run.
-- Same signature and contract as v1 and v2: ungated (a refused run is recordable while every
-- gate is shut); fail-closed on vocabulary (once dot_iu_command_catalog holds any row, a command
-- absent from it raises 23503 and writes nothing); `mutating` comes from the catalog (true for
-- an uncatalogued command while the catalog is empty); the row's constraints check mode,
-- status, their pairing, the md5 digest and the actor; p_gate_snapshot NULL records the current
-- value of every known gate. Cheaper than v2 in two ways: the gate snapshot is the one row of
-- dot_iu_gate_snapshot (kept equal to dot_config by a trigger there, in the gate writer's
-- transaction), not an aggregate over dot_config on every call; and nothing is written for the
-- views but the run itself (they count the ledger's rows past the tally's watermark). On about
-- one run in 1024 (run_id % 1024 = 0) it calls fn_dot_iu_command_run_tally_fold(), which never
-- waits, to move that watermark.
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
                    (SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s),
                    '{}'::jsonb),
           coalesce(p_evidence, '{}'::jsonb)
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = p_command_name
    RETURNING run_id INTO v_run_id;

    IF NOT FOUND THEN
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
                         (SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s),
                         '{}'::jsonb),
                coalesce(p_evidence, '{}'::jsonb))
        RETURNING run_id INTO v_run_id;
    END IF;

    IF v_run_id % 1024 = 0 THEN
        PERFORM public.fn_dot_iu_command_run_tally_fold();
    END IF;
    RETURN v_run_id;
END
$function$;
