-- fn_dot_iu_runtime_lease_release v2: give the lease p_lease back, for its holder at epoch
-- p_epoch only, and only from the login that acquired it (v2; see the renew function: the
-- holder and epoch are public to the package's roles) (docs/runtime.md). Returns true when it did; false, changing nothing, for anyone
-- else or a lease already released or broken. A release of an expired lease that nobody took
-- over is still recorded (true).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_runtime_lease_release(
    p_lease text,
    p_holder text,
    p_epoch bigint
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    UPDATE public.dot_iu_runtime_lease AS l
       SET released_at = pg_catalog.clock_timestamp(),
           expires_at = LEAST(l.expires_at, pg_catalog.clock_timestamp())
     WHERE l.lease_name = p_lease
       AND l.holder = p_holder
       AND l.epoch = p_epoch
       AND l.session_login = session_user
       AND l.released_at IS NULL;
    RETURN FOUND;
END
$function$;
