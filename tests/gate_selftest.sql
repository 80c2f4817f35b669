-- Bounded gate protocol self-test (SPEC 3.4), as an operator runs it against a live database:
--
--     psql -X -v ON_ERROR_STOP=1 -f tests/gate_selftest.sql "$DATABASE_URL"
--
-- Everything happens in ONE transaction that is rolled back at the end, so it leaves no gate
-- value, transition row or ledger row behind (identity sequences do advance: that is all).
-- It exercises the first governable gate that is closed: open with an approval, verify, refuse a
-- never-flip gate (42501), a non-governable key (22023), a NULL approval (23514) and a second
-- open (55000), close, then open a 1-second window, wait for it to expire and let the watchdog
-- close it, and check all_safe. It takes about 1.2 s and holds the exercised gate's row lock
-- meanwhile. Success prints NOTICE 'gate self-test: passed ...'; any broken rule raises
-- 'gate self-test FAILED: ...' and psql exits non-zero.
\set ON_ERROR_STOP on
BEGIN;
SET LOCAL lock_timeout = '5s';
DO $selftest$
DECLARE
    v_before jsonb := public.fn_iu_gate_verify_closed();
    v_gate text;
    v_result jsonb;
    v_report jsonb;
    v_state text;
    v_transitions bigint;
    v_runs bigint;
BEGIN
    IF NOT (v_before ->> 'never_flip_intact')::boolean THEN
        RAISE EXCEPTION 'gate self-test FAILED: a never-flip gate reads open: %', v_before;
    END IF;
    SELECT g ->> 'gate' INTO v_gate
      FROM pg_catalog.jsonb_array_elements(v_before -> 'gates') AS g
     WHERE g ->> 'class' = 'governable' AND NOT (g ->> 'open')::boolean AND (g ->> 'present')::boolean
     ORDER BY g ->> 'gate'
     LIMIT 1;
    IF v_gate IS NULL THEN
        RAISE EXCEPTION 'gate self-test FAILED: no closed governable gate to exercise';
    END IF;
    v_transitions := (SELECT pg_catalog.count(*) FROM public.iu_gate_transition);
    v_runs := (SELECT pg_catalog.count(*) FROM public.dot_iu_command_run);

    -- 1. Open with an approval: 'true', one transition row and one ledger row.
    v_result := public.fn_iu_gate_open(v_gate, 'self-test approval', 'gate-selftest', 'self-test', 60);
    IF v_result ->> 'new_value' IS DISTINCT FROM 'true'
       OR (SELECT c.value FROM public.dot_config AS c WHERE c.key = v_gate) IS DISTINCT FROM 'true'
       OR (SELECT pg_catalog.count(*) FROM public.iu_gate_transition) <> v_transitions + 1
       OR (SELECT pg_catalog.count(*) FROM public.dot_iu_command_run) <> v_runs + 1 THEN
        RAISE EXCEPTION 'gate self-test FAILED: open did not set and audit %: %', v_gate, v_result;
    END IF;

    -- 2. Verify: the gate reads open inside a live window; nothing is all_safe.
    v_report := public.fn_iu_gate_verify_closed(v_gate);
    IF (v_report ->> 'all_safe')::boolean
       OR NOT (v_report -> 'gates' -> 0 -> 'window' ->> 'live')::boolean THEN
        RAISE EXCEPTION 'gate self-test FAILED: verify_closed during the window: %', v_report;
    END IF;

    -- 3. Refusals, each with its SQLSTATE.
    BEGIN
        PERFORM public.fn_iu_gate_open('iu_enact.allow_no_review_decision', 'self-test approval',
                                       'gate-selftest', 'self-test', 60);
        v_state := 'no error';
    EXCEPTION WHEN OTHERS THEN
        v_state := SQLSTATE;
    END;
    IF v_state IS DISTINCT FROM '42501' THEN
        RAISE EXCEPTION 'gate self-test FAILED: opening a never-flip gate: want 42501, got %', v_state;
    END IF;
    BEGIN
        PERFORM public.fn_iu_gate_open('iu_core.self_test_not_a_gate', 'self-test approval',
                                       'gate-selftest', 'self-test', 60);
        v_state := 'no error';
    EXCEPTION WHEN OTHERS THEN
        v_state := SQLSTATE;
    END;
    IF v_state IS DISTINCT FROM '22023' THEN
        RAISE EXCEPTION 'gate self-test FAILED: opening a non-governable key: want 22023, got %', v_state;
    END IF;
    BEGIN
        PERFORM public.fn_iu_gate_open(v_gate, NULL, 'gate-selftest', 'self-test', 60);
        v_state := 'no error';
    EXCEPTION WHEN OTHERS THEN
        v_state := SQLSTATE;
    END;
    IF v_state IS DISTINCT FROM '23514' THEN
        RAISE EXCEPTION 'gate self-test FAILED: opening with a NULL approval: want 23514, got %', v_state;
    END IF;
    BEGIN
        PERFORM public.fn_iu_gate_open(v_gate, 'self-test approval', 'gate-selftest', 'self-test', 60);
        v_state := 'no error';
    EXCEPTION WHEN OTHERS THEN
        v_state := SQLSTATE;
    END;
    IF v_state IS DISTINCT FROM '55000' THEN
        RAISE EXCEPTION 'gate self-test FAILED: opening an open gate: want 55000, got %', v_state;
    END IF;

    -- 4. Close: back to 'false'.
    v_result := public.fn_iu_gate_close(v_gate, 'gate-selftest', 'self-test');
    IF v_result ->> 'new_value' IS DISTINCT FROM 'false'
       OR (SELECT c.value FROM public.dot_config AS c WHERE c.key = v_gate) IS DISTINCT FROM 'false' THEN
        RAISE EXCEPTION 'gate self-test FAILED: close did not close %: %', v_gate, v_result;
    END IF;

    -- 5. A window expires by the wall clock; the watchdog closes it.
    PERFORM public.fn_iu_gate_open(v_gate, 'self-test approval', 'gate-selftest', 'self-test', 1);
    PERFORM pg_catalog.pg_sleep(1.1);
    v_result := public.fn_iu_gate_watchdog('gate-selftest');
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v_result) AS c
                    WHERE c ->> 'gate' = v_gate AND c ->> 'cause' = 'expired') THEN
        RAISE EXCEPTION 'gate self-test FAILED: the watchdog did not close the expired %: %',
            v_gate, v_result;
    END IF;

    -- 6. Safe again: the gate closed, never-flip intact, and all_safe if it was before.
    v_report := public.fn_iu_gate_verify_closed();
    IF NOT (public.fn_iu_gate_verify_closed(v_gate) ->> 'all_safe')::boolean
       OR NOT (v_report ->> 'never_flip_intact')::boolean
       OR ((v_before ->> 'all_safe')::boolean AND NOT (v_report ->> 'all_safe')::boolean) THEN
        RAISE EXCEPTION 'gate self-test FAILED: not safe after the test: %', v_report;
    END IF;

    RAISE NOTICE 'gate self-test: passed (exercised %; rolling back)', v_gate;
END
$selftest$;
ROLLBACK;
