"""The ``targets`` section of ``substrate verify``: does each catalogued IU Core function exist,
by exact signature?

The targets are the distinct ``target_function`` values of the live catalog, leaving out the
package's own functions (names matching the snapshot's ``OWNED_FUNCTIONS``, such as the
``fn_iu_gate_*`` protocol): every migrated database has those, so whether targets resolve is a
question about IU Core only (SPEC 3.3). A target resolves when ``to_regprocedure(signature)``
finds a ``pg_proc`` row with the catalogued parameter types; a function of the same name with
other parameters does not count, and is reported so the mismatch is visible. Unresolved targets
are a finding only with --strict: the functions belong to IU Core, so a bare database has none.
"""

from __future__ import annotations

from substrate.review.schema_snapshot import OWNED_FUNCTIONS, SCHEMAS

CATALOG_TABLE = "public.dot_iu_command_catalog"
# target_function is schema.name(types): ck_dot_iu_command_catalog_target_function says so.
RESOLVE_SQL = f"""
WITH target AS (
    SELECT c.target_function AS signature,
           pg_catalog.split_part(pg_catalog.split_part(c.target_function, '(', 1), '.', 1)
               AS schema_name,
           pg_catalog.split_part(pg_catalog.split_part(c.target_function, '(', 1), '.', 2)
               AS function_name,
           pg_catalog.array_agg(c.command_name) AS commands
      FROM {CATALOG_TABLE} AS c
     GROUP BY c.target_function
)
SELECT t.signature,
       pg_catalog.to_regprocedure(t.signature) IS NOT NULL AS resolves,
       t.commands,
       ARRAY(SELECT n.nspname || '.' || p.proname
                    || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')'
               FROM pg_catalog.pg_proc AS p
               JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
              WHERE n.nspname = t.schema_name AND p.proname = t.function_name
              ORDER BY 1) AS same_name
  FROM target AS t
 WHERE NOT (t.schema_name = ANY(%s) AND t.function_name LIKE ANY(%s))
"""


def resolve_targets(conn) -> list[dict[str, object]] | None:
    """One entry per distinct IU Core target function of the catalog, ordered by signature:
    ``signature``, ``resolves``, ``commands`` calling it, ``same_name`` (every function of that
    schema and name in the database, with its parameter types). None without a catalog."""
    present = conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL",
                           (CATALOG_TABLE,)).fetchone()[0]
    if not present:
        return None
    rows = conn.execute(RESOLVE_SQL, (list(SCHEMAS), list(OWNED_FUNCTIONS))).fetchall()
    return [
        {
            "signature": signature,
            "resolves": resolves,
            "commands": sorted(commands),
            "same_name": list(same_name),
        }
        for signature, resolves, commands, same_name in sorted(rows)
    ]


def section(conn) -> dict:
    targets = resolve_targets(conn)
    if targets is None:
        return {"ok": True, "strict_ok": True, "distinct": 0, "resolved": 0, "unresolved": [],
                "functions": [], "findings": [],
                "summary": f"not checked ({CATALOG_TABLE} does not exist)"}
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
