-- fn_dot_iu_runtime_lease_break v1: an operator frees the lease p_lease from whoever holds it
-- (a crashed runtime whose lease would otherwise run until it expires), and the break is
-- audited (docs/runtime.md): one run-ledger row (dot_iu_runtime_lease_break, apply, applied,
-- written through fn_iu_gate_log_run, so it is recorded while every gate is shut) with the
-- holder and epoch it broke in its evidence, never the reason; its digest covers every
-- argument. It waits for an apply in flight (that apply holds the lease row until it commits).
-- The next acquire takes the lease with a new epoch, so the broken holder can no longer apply.
-- Refusals (22023): an unknown lease, an actor that is not a name, a reason NULL, blank or over
-- 2,000 characters. Returns {"lease", "holder", "epoch", "was_live", "run_id"}.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_runtime_lease_break(
    p_lease text,
    p_actor text,
    p_reason text
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_problem text;
    v_lease record;
    v_live boolean;
    v_run_id bigint;
BEGIN
    v_problem := public.fn_dot_iu_text_problem(p_actor, 200);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'actor must name who breaks lease %: it %', p_lease, v_problem
            USING ERRCODE = '22023';
    END IF;
    IF p_reason IS NULL OR p_reason !~ '[^[:space:]]' OR pg_catalog.length(p_reason) > 2000 THEN
        RAISE EXCEPTION 'reason must say why the lease is broken (1 to 2000 characters)'
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_lease FROM public.dot_iu_runtime_lease AS l WHERE l.lease_name = p_lease FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease % does not exist', coalesce(pg_catalog.quote_literal(pg_catalog.left(p_lease, 80)), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    v_live := v_lease.holder IS NOT NULL AND v_lease.released_at IS NULL
              AND v_lease.expires_at > pg_catalog.clock_timestamp();

    UPDATE public.dot_iu_runtime_lease AS l
       SET released_at = pg_catalog.clock_timestamp(),
           expires_at = LEAST(l.expires_at, pg_catalog.clock_timestamp())
     WHERE l.lease_name = p_lease AND l.released_at IS NULL;

    v_run_id := public.fn_iu_gate_log_run(
        'dot_iu_runtime_lease_break', p_actor,
        pg_catalog.md5(pg_catalog.jsonb_build_object(
            'lease', p_lease, 'actor', p_actor, 'reason', p_reason)::text),
        pg_catalog.jsonb_build_object(
            'lease', p_lease, 'holder', v_lease.holder, 'epoch', v_lease.epoch,
            'was_live', v_live));

    RETURN pg_catalog.jsonb_build_object(
        'lease', p_lease, 'holder', v_lease.holder, 'epoch', v_lease.epoch,
        'was_live', v_live, 'run_id', v_run_id);
END
$function$;
