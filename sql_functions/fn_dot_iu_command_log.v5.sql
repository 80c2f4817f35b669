-- fn_dot_iu_command_log v5: the run ledger's writer for everyone but the gate protocol
-- (docs/objects.md, "The run ledger"). Same signature and contract as v4, plus the gates that
-- close themselves (docs/gates.md):
--   * the gate snapshot says what the gate readers say at the moment of the write: the row of
--     dot_iu_gate_snapshot while it is valid (clock_timestamp() < valid_until, the first
--     moment a window in it ends), else the readings computed afresh (fn_iu_gate_state);
--   * the actor follows the rules for a name (fn_dot_iu_text_problem): at most 200 characters,
--     a letter or digit, no control, format or invisible character (22023). A NULL or blank
--     actor is still refused by the ledger's constraints (23502, 23514), as before.
-- Unchanged from v4: session_login = session_user; p_gate_snapshot ignored; evidence a JSON
-- object of at most 4 KiB (22023); applied rows of dot_iu_gate_* refused (42501); ungated;
-- fail-closed on vocabulary (23503); a tally fold on about one run in 1024.
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
    IF p_actor ~ '[^[:space:]]'
       AND (pg_catalog.length(p_actor) > 200
            OR p_actor ~ '[\u0001-\u001f\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a\U000e0000-\U000e0fff]'
            OR p_actor !~ '[0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u1fff\u2070-\u218f\u2c00-\u2dff\u2e80-\uffef\U00010000-\U0010ffff]') THEN
        RAISE EXCEPTION 'actor %', public.fn_dot_iu_text_problem(p_actor, 200)
            USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.jsonb_typeof(p_evidence) <> 'object'
       OR pg_catalog.octet_length(p_evidence::text) > 4096 THEN
        RAISE EXCEPTION 'evidence must be a JSON object of at most 4096 bytes of text, got a % of % bytes',
                pg_catalog.jsonb_typeof(p_evidence), pg_catalog.octet_length(p_evidence::text)
            USING ERRCODE = '22023',
                  HINT = 'Evidence holds structural facts (ids, counts, SQLSTATEs), never values or documents.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(p_evidence) AS k (key)
                WHERE k.key ~* '(passw|secret|token|api.?key|credential|authori[sz]ation|private.?key)') THEN
        RAISE EXCEPTION 'evidence key % names a secret: secrets never enter the ledger',
                (SELECT pg_catalog.quote_literal(k.key) FROM pg_catalog.jsonb_object_keys(p_evidence) AS k (key)
                  WHERE k.key ~* '(passw|secret|token|api.?key|credential|authori[sz]ation|private.?key)' LIMIT 1)
            USING ERRCODE = '22023';
    END IF;
    IF p_command_name LIKE 'dot\_iu\_gate\_%' AND p_run_status NOT IN ('refused', 'failed') THEN
        RAISE EXCEPTION '% rows of % are written only by the gate protocol', p_run_status, p_command_name
            USING ERRCODE = '42501',
                  HINT = 'Open, close and watch gates through fn_iu_gate_open/close/watchdog (substrate gates).';
    END IF;

    INSERT INTO public.dot_iu_command_run
           (command_name, run_mode, run_status, mutating, actor, params_digest,
            gate_snapshot, evidence, session_login)
    SELECT p_command_name, p_run_mode, p_run_status, c.mutating, p_actor, p_params_digest,
           coalesce((SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s
                      WHERE s.valid_until > pg_catalog.clock_timestamp()),
                    (SELECT pg_catalog.jsonb_object_agg(
                                g.gate_key, CASE WHEN g.reads_open THEN 'true' ELSE 'false' END)
                       FROM public.fn_iu_gate_state(NULL) AS g)),
           coalesce(p_evidence, '{}'::jsonb), session_user
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
                gate_snapshot, evidence, session_login)
        VALUES (p_command_name, p_run_mode, p_run_status, true, p_actor, p_params_digest,
                coalesce((SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s
                           WHERE s.valid_until > pg_catalog.clock_timestamp()),
                         (SELECT pg_catalog.jsonb_object_agg(
                                     g.gate_key, CASE WHEN g.reads_open THEN 'true' ELSE 'false' END)
                            FROM public.fn_iu_gate_state(NULL) AS g)),
                coalesce(p_evidence, '{}'::jsonb), session_user)
        RETURNING run_id INTO v_run_id;
    END IF;

    IF v_run_id % 1024 = 0 THEN
        PERFORM public.fn_dot_iu_command_run_tally_fold();
    END IF;
    RETURN v_run_id;
END
$function$;
