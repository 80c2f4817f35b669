-- fn_dot_iu_runtime_apply_begin v3: the first statement of every apply transaction of the
-- operator runtime (docs/runtime.md). In the caller's transaction, before any command SQL:
--   1. the command must be catalogued (23503) and not one of the package's own writers
--      (dot_iu_gate_open, _close, _watchdog, dot_iu_runtime_lease_break: 42501);
--   2. the binding (v3): the catalog row is locked FOR SHARE, so it stays as it is until the
--      apply ends (a seed revision changing it waits), and when p_binding is given it must
--      equal fn_dot_iu_command_binding(p_command_name), the digest of the catalog row and the
--      target's pg_proc entry the caller built its statement from (55000 otherwise: the
--      caller resolves the command again and rebuilds the statement; the operator runtime
--      does so by itself). The runtime always names it; NULL checks nothing, as v2;
--   3. the lease: the row of p_lease is locked FOR SHARE and must be held by p_holder at epoch
--      p_epoch, acquired by this session's login, not released, not expired (55000 otherwise:
--      a holder whose lease expired or was taken over or broken cannot apply). The lock keeps
--      a takeover, a renewal by someone else and a break waiting until this transaction ends;
--   4. the gates (v3): this transaction takes the gates' hold, the shared advisory lock the
--      logger takes for an applied row ((1685025897, the backend's pid modulo 16); every close
--      takes all 16 slots exclusively in dot_config's close-wait trigger), so a close or the
--      watchdog waits until the apply ends. Outside READ COMMITTED it first locks the gates'
--      dot_config rows FOR SHARE (a snapshot older than a close fails there with 40001; a
--      close in flight holds its row and waits for the hold, so the rows come first or the two
--      would deadlock). Then the runtime gate and the catalog row's required_gates must read
--      open (55000 otherwise, naming the shut ones), read as the logger's gate rule reads them:
--      from the cached gate snapshot (dot_iu_gate_snapshot) while it is valid, else each
--      through fn_iu_gate_reads_open, the same rule computed afresh. v2 locked the rows FOR
--      SHARE in every transaction and read every gate afresh, which together cost more than
--      the rest of the function.
-- Returns {"command", "gates": [...], "lease", "epoch"}. The logger checks the gates and the
-- lease again when the applied row is written, in the same transaction.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_runtime_apply_begin(
    p_command_name text,
    p_lease text,
    p_holder text,
    p_epoch bigint,
    p_binding text DEFAULT NULL
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
    v_snapshot jsonb;
    v_gate text;
BEGIN
    IF p_command_name IN ('dot_iu_gate_open', 'dot_iu_gate_close', 'dot_iu_gate_watchdog', 'dot_iu_runtime_lease_break') THEN
        RAISE EXCEPTION '% is applied only by the package''s own functions', p_command_name
            USING ERRCODE = '42501';
    END IF;
    SELECT c.required_gates INTO v_required
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = p_command_name
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'command % is not in the command catalog', p_command_name
            USING ERRCODE = '23503';
    END IF;
    IF p_binding IS NOT NULL AND p_binding IS DISTINCT FROM public.fn_dot_iu_command_binding(p_command_name) THEN
        RAISE EXCEPTION 'the catalog binding of % changed since it was read: its catalog row or its target function is not what the statement was built from',
                p_command_name
            USING ERRCODE = '55000',
                  HINT = 'Resolve the command again and rebuild its statement (the operator runtime does so by itself).';
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
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        PERFORM 1 FROM public.dot_config AS c WHERE c.key = ANY (v_gates) ORDER BY c.key FOR SHARE;
    END IF;
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(1685025897, pg_catalog.pg_backend_pid() % 16) THEN
        PERFORM pg_catalog.pg_advisory_xact_lock_shared(1685025897, pg_catalog.pg_backend_pid() % 16);
    END IF;
    -- The readings, in a statement after the hold: the cached gate snapshot while it is valid
    -- (what the logger's gate rule reads too), else each gate afresh.
    SELECT s.snapshot INTO v_snapshot
      FROM public.dot_iu_gate_snapshot AS s
     WHERE s.valid_until > pg_catalog.clock_timestamp();
    IF FOUND THEN
        FOREACH v_gate IN ARRAY v_gates LOOP
            IF v_snapshot ->> v_gate IS DISTINCT FROM 'true' THEN
                v_shut := pg_catalog.concat_ws(', ', v_shut, v_gate);
            END IF;
        END LOOP;
    ELSE
        SELECT pg_catalog.string_agg(g.gate, ', ' ORDER BY g.gate) INTO v_shut
          FROM pg_catalog.unnest(v_gates) AS g (gate)
         WHERE NOT public.fn_iu_gate_reads_open(g.gate);
    END IF;
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
