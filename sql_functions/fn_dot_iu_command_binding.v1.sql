-- fn_dot_iu_command_binding v1: what a command's governed statement was built from, as one md5
-- (docs/runtime.md, "The catalog binding"). The operator runtime builds a command's statement
-- from two things the database holds: the catalog row (target signature, required gates and the
-- rest of the row) and the target function's entry in pg_proc (its oid, argument names and
-- modes, which name the parameters and fix their order, and whether it returns a set). This digest covers both, so a changed
-- catalog row, or a target dropped, re-created or renamed, gives another digest; NULL when the
-- command is not catalogued (and the pg_proc part NULL when the target does not resolve).
-- The runtime reads it with the catalog row and names it to fn_dot_iu_runtime_apply_begin,
-- which refuses an apply whose statement came from a binding that is no longer current. Reads
-- what its caller may read (SECURITY INVOKER); writes nothing. PL/pgSQL, not SQL: its plan is
-- cached for the session, where an SQL function pinned to a search_path is planned on every
-- call (a third of a millisecond more per apply, measured).
CREATE OR REPLACE FUNCTION public.fn_dot_iu_command_binding(p_command_name text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    RETURN (SELECT pg_catalog.md5(ROW(c.command_name, c.category, c.mutating, c.reversible,
                                      c.target_function, c.inverse_command, c.required_gates,
                                      p.oid, p.pronargs, p.proargnames, p.proargmodes,
                                      p.provariadic, p.proretset)::text)
              FROM public.dot_iu_command_catalog AS c
              LEFT JOIN pg_catalog.pg_proc AS p
                ON p.oid = pg_catalog.to_regprocedure(c.target_function)
             WHERE c.command_name = p_command_name);
END
$function$;
