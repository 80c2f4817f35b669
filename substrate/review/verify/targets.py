"""The ``targets`` section of ``substrate verify``: does each catalogued IU Core function exist,
by exact signature?

A target resolves when ``to_regprocedure(signature)`` finds a ``pg_proc`` row with the
registry's parameter types; a function of the same name with other parameters does not count,
and is reported so the mismatch is visible. The connection is passed in (psycopg 3).
"""

from __future__ import annotations

from seeds.registry import DOT_COMMANDS, DotCommand, target_functions

RESOLVE_SQL = """
SELECT t.signature,
       pg_catalog.to_regprocedure(t.signature) IS NOT NULL AS resolves,
       ARRAY(SELECT n.nspname || '.' || p.proname
                    || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')'
               FROM pg_catalog.pg_proc AS p
               JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
              WHERE n.nspname = t.schema_name AND p.proname = t.function_name
              ORDER BY 1) AS same_name
  FROM ROWS FROM (pg_catalog.unnest(%s::text[]), pg_catalog.unnest(%s::text[]),
                 pg_catalog.unnest(%s::text[])) AS t (signature, schema_name, function_name)
 ORDER BY t.signature
"""


def resolve_targets(conn, commands: tuple[DotCommand, ...]) -> list[dict[str, object]]:
    """One entry per distinct target function of ``commands``, ordered by signature:
    ``signature``, ``resolves``, ``commands`` calling it, ``same_name`` (every function of that
    schema and name in the database, with its parameter types)."""
    targets = target_functions(commands)
    rows = conn.execute(
        RESOLVE_SQL,
        (
            [target.signature for target in targets],
            [target.schema for target in targets],
            [target.name for target in targets],
        ),
    ).fetchall()
    callers: dict[str, list[str]] = {}
    for command in commands:
        callers.setdefault(command.target.signature, []).append(command.name)
    return [
        {
            "signature": signature,
            "resolves": resolves,
            "commands": sorted(callers[signature]),
            "same_name": list(same_name),
        }
        for signature, resolves, same_name in rows
    ]


def section(conn, commands: tuple[DotCommand, ...] = DOT_COMMANDS) -> dict:
    targets = resolve_targets(conn, commands)
    unresolved = [target for target in targets if not target["resolves"]]
    findings = []
    for target in unresolved:
        finding = f"unresolved {target['signature']} (called by {', '.join(target['commands'])})"
        if target["same_name"]:
            finding += f"; same name, other parameters: {', '.join(target['same_name'])}"
        findings.append(finding)
    resolved = len(targets) - len(unresolved)
    return {
        "ok": True,
        "strict_ok": not unresolved,
        "distinct": len(targets),
        "resolved": resolved,
        "unresolved": [target["signature"] for target in unresolved],
        "functions": targets,
        "summary": f"{len(targets)} distinct target functions, {resolved} resolve in pg_proc",
        "findings": findings,
    }
