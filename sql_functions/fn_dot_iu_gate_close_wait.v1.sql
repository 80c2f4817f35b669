-- fn_dot_iu_gate_close_wait v1: trigger function of dot_config's close-wait triggers (BEFORE
-- UPDATE and BEFORE DELETE for each row of an open gate, BEFORE TRUNCATE for the statement;
-- enabled ALWAYS, so session_replication_role = replica does not silence them). Whatever closes
-- a gate, fn_iu_gate_close, the watchdog or a direct UPDATE, DELETE or TRUNCATE, first takes the
-- gates' hold exclusively: the transaction-level advisory locks (1685025897, 0) to
-- (1685025897, 15), in that order; the logger takes one of them shared, its backend's slot (pid
-- modulo 16, so concurrent appliers rarely share a lock), for every 'applied' row in mode
-- 'apply' before it reads the gates
-- (docs/gates.md, "A close waits for the applies in flight"). So a close waits until every
-- transaction that is recording an applied row ends, and no applied row can be committed on a
-- reading older than a close. The wait is bounded by the closing session's lock_timeout (the
-- gate CLI sets one; a session without one waits as for a row lock). A row whose key is not a
-- gate, and an UPDATE that leaves a gate 'true' under the same key, take nothing.
CREATE OR REPLACE FUNCTION public.fn_dot_iu_gate_close_wait()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(1685025897, s.slot)
           FROM pg_catalog.generate_series(0, 15) AS s (slot);
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM public.fn_iu_gate_classes() AS g WHERE g.gate_key = OLD.key) THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_catalog.pg_advisory_xact_lock(1685025897, s.slot)
               FROM pg_catalog.generate_series(0, 15) AS s (slot);
        ELSIF NEW.key IS DISTINCT FROM OLD.key OR NEW.value IS DISTINCT FROM 'true' THEN
            PERFORM pg_catalog.pg_advisory_xact_lock(1685025897, s.slot)
               FROM pg_catalog.generate_series(0, 15) AS s (slot);
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$function$;
