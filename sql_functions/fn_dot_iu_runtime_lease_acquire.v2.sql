-- fn_dot_iu_runtime_lease_acquire v2: take the runtime lease p_lease for p_holder for
-- p_ttl_seconds (docs/runtime.md, "One applier at a time"). Returns the lease's epoch, a fencing
-- token that grows by one at every new holder, or NULL while another holder's lease is live.
-- A free lease (never taken, released, broken or expired) is taken with epoch + 1; the live
-- holder asking again, from the login that acquired the lease, keeps its epoch and gets a new
-- expiry. v2: another login naming the live holder gets NULL, as for any other holder (v1
-- extended the lease for it: the holder's name is readable in v_dot_iu_runtime_lease, so it
-- proves nothing by itself). All times come from the
-- database's clock. A takeover waits for an apply in flight: the apply holds the lease row
-- (FOR SHARE, fn_dot_iu_runtime_apply_begin) until it commits, and this locks it FOR UPDATE.
-- Refusals (22023): a lease name that is not [a-z][a-z0-9_]* (at most 63), a holder that is not
-- a name (fn_dot_iu_text_problem, 200), a ttl outside (0, 3600].
CREATE OR REPLACE FUNCTION public.fn_dot_iu_runtime_lease_acquire(
    p_lease text,
    p_holder text,
    p_ttl_seconds integer
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_problem text;
    v_lease record;
    v_now timestamptz;
    v_epoch bigint;
BEGIN
    IF p_lease IS NULL OR p_lease !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'lease name must match [a-z][a-z0-9_]{0,62}, got %',
                coalesce(pg_catalog.quote_literal(pg_catalog.left(p_lease, 80)), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    v_problem := public.fn_dot_iu_text_problem(p_holder, 200);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'holder %', v_problem USING ERRCODE = '22023';
    END IF;
    IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 OR p_ttl_seconds > 3600 THEN
        RAISE EXCEPTION 'ttl_seconds must be in (0, 3600], got %', coalesce(p_ttl_seconds::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO public.dot_iu_runtime_lease AS l (lease_name)
    VALUES (p_lease)
    ON CONFLICT (lease_name) DO NOTHING;
    SELECT * INTO v_lease FROM public.dot_iu_runtime_lease AS l WHERE l.lease_name = p_lease FOR UPDATE;
    v_now := pg_catalog.clock_timestamp();

    IF v_lease.holder IS NOT NULL AND v_lease.expires_at > v_now AND v_lease.released_at IS NULL THEN
        IF v_lease.holder IS DISTINCT FROM p_holder
           OR v_lease.session_login IS DISTINCT FROM session_user THEN
            RETURN NULL;
        END IF;
        UPDATE public.dot_iu_runtime_lease AS l
           SET renewed_at = v_now,
               expires_at = v_now + pg_catalog.make_interval(secs => p_ttl_seconds)
         WHERE l.lease_name = p_lease;
        RETURN v_lease.epoch;
    END IF;

    UPDATE public.dot_iu_runtime_lease AS l
       SET holder = p_holder,
           epoch = l.epoch + 1,
           acquired_at = v_now,
           renewed_at = v_now,
           expires_at = v_now + pg_catalog.make_interval(secs => p_ttl_seconds),
           released_at = NULL,
           session_login = session_user
     WHERE l.lease_name = p_lease
    RETURNING l.epoch INTO v_epoch;
    RETURN v_epoch;
END
$function$;
