-- fn_dot_iu_command_log v4: the only writer of the run ledger public.dot_iu_command_run for
-- everyone but the gate protocol (docs/objects.md, "The run ledger"). Same signature and
-- contract as v3 (production callers exist), plus what least privilege needs (docs/roles.md):
--   * session_login: every row records the authenticated login (session_user), whatever
--     p_actor claims; p_actor stays the caller's claim beside it;
--   * the gate snapshot is always the live one (the row of dot_iu_gate_snapshot);
--     p_gate_snapshot is accepted for compatibility and ignored, so a caller cannot record a
--     forged snapshot;
--   * p_actor holds at most 200 characters and p_evidence is a JSON object of at most 4 KiB
--     of text whose keys do not name a secret (password, secret, token, api key, credential,
--     authorization, private key) (22023 otherwise), so a row cannot carry a document, a dump
--     or a credential;
--   * rows of the gate protocol's own commands (dot_iu_gate_*) other than refused and failed
--     are written only by the gate functions, through fn_iu_gate_log_run (42501 here).
-- Unchanged from v3: ungated; fail-closed on vocabulary (23503 for a command absent from a
-- non-empty catalog); mutating from the catalog; the row's constraints check the rest; on about
-- one run in 1024 it calls fn_dot_iu_command_run_tally_fold(), which never waits.
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
    IF pg_catalog.length(p_actor) > 200 THEN
        RAISE EXCEPTION 'actor is % characters long: at most 200', pg_catalog.length(p_actor)
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
           coalesce((SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s), '{}'::jsonb),
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
                coalesce((SELECT s.snapshot FROM public.dot_iu_gate_snapshot AS s), '{}'::jsonb),
                coalesce(p_evidence, '{}'::jsonb), session_user)
        RETURNING run_id INTO v_run_id;
    END IF;

    IF v_run_id % 1024 = 0 THEN
        PERFORM public.fn_dot_iu_command_run_tally_fold();
    END IF;
    RETURN v_run_id;
END
$function$;
