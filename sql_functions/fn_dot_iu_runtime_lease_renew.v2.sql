-- fn_dot_iu_runtime_lease_renew v2: extend the lease p_lease by p_ttl_seconds from now, for its
-- live holder at epoch p_epoch only, and only from the login that acquired it (v2: the holder
-- and epoch are readable by every package role in v_dot_iu_runtime_lease, so they alone prove
-- nothing; another login that wants the lease waits for it to expire or has it broken, audited,
-- by fn_dot_iu_runtime_lease_break) (docs/runtime.md). Returns true when it did; false, changing
-- nothing, for anyone else: another holder, another epoch (the lease was taken over), a lease
-- released, broken or expired (an expired lease is acquired again, with a new epoch). A ttl
-- outside (0, 3600] is refused (22023).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_runtime_lease_renew(
    p_lease text,
    p_holder text,
    p_epoch bigint,
    p_ttl_seconds integer
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 OR p_ttl_seconds > 3600 THEN
        RAISE EXCEPTION 'ttl_seconds must be in (0, 3600], got %', coalesce(p_ttl_seconds::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    UPDATE public.dot_iu_runtime_lease AS l
       SET renewed_at = pg_catalog.clock_timestamp(),
           expires_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_ttl_seconds)
     WHERE l.lease_name = p_lease
       AND l.holder = p_holder
       AND l.epoch = p_epoch
       AND l.session_login = session_user
       AND l.released_at IS NULL
       AND l.expires_at > pg_catalog.clock_timestamp();
    RETURN FOUND;
END
$function$;
