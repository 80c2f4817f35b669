-- fn_dot_iu_text_problem v1: why a name an operator gives (an actor, an approval id) is not
-- acceptable, or NULL when it is (docs/gates.md, "What a name may hold"). Acceptable: at most
-- p_max_length characters, at least one letter or digit (A-Z, a-z, 0-9, or a letter of any
-- other script: U+00C0 on, outside the punctuation, symbol and space blocks), and no control,
-- format or invisible character: C0 and C1 controls, DEL, no-break and other spaces but the
-- plain one (U+0020), soft hyphen, zero-width characters and joiners, bidirectional controls,
-- word joiner and invisible operators, fillers, variation selectors, byte-order mark, tags.
-- The logger checks its actor with the same two classes, written out in its own hot path.
-- Locale-independent: the classes are code point ranges, never [[:alpha:]].
CREATE OR REPLACE FUNCTION public.fn_dot_iu_text_problem(p_text text, p_max_length integer)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    c_invisible CONSTANT text := '[\u0001-\u001f\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a\U000e0000-\U000e0fff]';
    c_letter_or_digit CONSTANT text := '[0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u1fff\u2070-\u218f\u2c00-\u2dff\u2e80-\uffef\U00010000-\U0010ffff]';
    v_bad text;
BEGIN
    IF p_text IS NULL THEN
        RETURN 'is NULL';
    END IF;
    IF pg_catalog.length(p_text) > p_max_length THEN
        RETURN pg_catalog.format('is %s characters long: at most %s',
                                 pg_catalog.length(p_text), p_max_length);
    END IF;
    v_bad := pg_catalog.substring(p_text, c_invisible);
    IF v_bad IS NOT NULL THEN
        RETURN pg_catalog.format('holds a control, format or invisible character (U+%s at position %s)',
                                 pg_catalog.upper(pg_catalog.lpad(pg_catalog.to_hex(pg_catalog.ascii(v_bad)), GREATEST(4, pg_catalog.length(pg_catalog.to_hex(pg_catalog.ascii(v_bad)))), '0')),
                                 pg_catalog.strpos(p_text, v_bad));
    END IF;
    IF p_text !~ c_letter_or_digit THEN
        RETURN 'holds no letter or digit';
    END IF;
    RETURN NULL;
END
$function$;
