-- fn_dot_iu_runtime_apply_begin v2: the first statement of every apply transaction of the
-- operator runtime (docs/runtime.md). In the caller's transaction, before any command SQL:
--   1. the lease: the row of p_lease is locked FOR SHARE and must be held by p_holder at epoch
--      p_epoch, acquired by this session's login (v2: holder and epoch are readable by every
--      package role, so another login could name them), not released, not expired (55000
--      otherwise: a holder whose lease expired or was taken over or broken cannot apply). The lock keeps a takeover, a renewal by someone
--      else and a break waiting until this transaction ends;
--   2. the gates: the runtime gate and the catalog row's required_gates are locked FOR SHARE in
--      dot_config (a close or the watchdog waits until this transaction ends) and must read open
--      (55000 otherwise, naming the shut ones);
--   3. the command must be catalogued (23503) and not one of the package's own writers
--      (dot_iu_gate_open, _close, _watchdog, dot_iu_runtime_lease_break: 42501; v2 names them,
--      v1 refused every dot_iu_gate_* name).
-- v2 reads each gate through fn_iu_gate_reads_open (v1: fn_iu_gate_state, the same rule).
-- Returns {"command", "gates": [...], "lease", "epoch"}. The logger checks the gates again when
-- the applied row is written, in the same transaction.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_runtime_apply_begin(
    p_command_name text,
    p_lease text,
    p_holder text,
    p_epoch bigint
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_required text[];
    v_gates text[];
    v_shut text;
BEGIN
    IF p_command_name IN ('dot_iu_gate_open', 'dot_iu_gate_close', 'dot_iu_gate_watchdog', 'dot_iu_runtime_lease_break') THEN
        RAISE EXCEPTION '% is applied only by the package''s own functions', p_command_name
            USING ERRCODE = '42501';
    END IF;
    SELECT c.required_gates INTO v_required
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = p_command_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'command % is not in the command catalog', p_command_name
            USING ERRCODE = '23503';
    END IF;

    PERFORM 1
       FROM public.dot_iu_runtime_lease AS l
      WHERE l.lease_name = p_lease
        AND l.holder = p_holder
        AND l.epoch = p_epoch
        AND l.session_login = session_user
        AND l.released_at IS NULL
        AND l.expires_at > pg_catalog.clock_timestamp()
        FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease % is not held by % at epoch % for this login: expired, taken over, released or broken',
                p_lease, p_holder, p_epoch
            USING ERRCODE = '55000',
                  HINT = 'Acquire the lease again before applying.';
    END IF;

    v_gates := 'iu_core.operator_runtime_enabled'::text || v_required;
    PERFORM 1 FROM public.dot_config AS c WHERE c.key = ANY (v_gates) ORDER BY c.key FOR SHARE;
    SELECT pg_catalog.string_agg(g.gate, ', ' ORDER BY g.gate) INTO v_shut
      FROM pg_catalog.unnest(v_gates) AS g (gate)
     WHERE NOT public.fn_iu_gate_reads_open(g.gate);
    IF v_shut IS NOT NULL THEN
        RAISE EXCEPTION 'apply of % refused: gate(s) shut: %', p_command_name, v_shut
            USING ERRCODE = '55000',
                  HINT = 'Open them through the gate protocol (substrate gates open), then apply again.';
    END IF;

    RETURN pg_catalog.jsonb_build_object(
        'command', p_command_name, 'gates', pg_catalog.to_jsonb(v_gates),
        'lease', p_lease, 'epoch', p_epoch);
END
$function$;
