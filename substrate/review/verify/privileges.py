"""The ``privileges`` section of ``substrate verify``: roles, owners, grants, triggers and
settings, against the package's privilege matrix (docs/roles.md).

The matrix is what the migrations build, as the committed schema snapshot records it
(``schema/snapshot.txt``: its ``privileges``, ``owners`` and ``triggers`` sections), so the
package's own grants (to dot_iu_runtime, dot_iu_gate_operator, dot_iu_auditor) are expected
and never a finding. Findings, each with the statement that repairs it:

- a package role that can log in or holds an attribute a group role must not have (SUPERUSER,
  CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS), or a package role missing;
- an object owned by anyone but the owner the snapshot names (dot_iu_owner from
  0010_least_privilege on);
- any grant the matrix does not make (to a login, to PUBLIC, or more than the matrix gives a
  package role), and any grant of the matrix that is missing;
- a package trigger disabled, or enabled otherwise than the migrations enable it (the dot_config
  guard fires ALWAYS, even in replica mode);
- a grant on the identity sequence of a package table (setval would block its writers), a
  package role that is a member of another role (it would act with that role's rights), and a
  role (not a superuser) that is a member of pg_write_all_data (it writes every table past the
  logger's and the gate protocol's rules);
- a ``dot_iu.*`` setting stored at database or role level (``ALTER DATABASE/ROLE ... SET``):
  the package reads such settings only as transaction-local switches, and a stored one is how
  a maintenance switch was once left on for every session.

Reported as information: which roles are members of which package role (who may act as the
owner, who runs the runtime, who operates the gates, who audits).
"""

from __future__ import annotations

import re
from pathlib import Path

from substrate.review import schema_snapshot, shared
from substrate.review.schema_snapshot import COMMITTED

ROLES = ("dot_iu_owner", "dot_iu_runtime", "dot_iu_gate_operator", "dot_iu_auditor")
FORBIDDEN = (("rolcanlogin", "LOGIN"), ("rolsuper", "SUPERUSER"), ("rolcreatedb", "CREATEDB"),
             ("rolcreaterole", "CREATEROLE"), ("rolreplication", "REPLICATION"),
             ("rolbypassrls", "BYPASSRLS"))
SETTINGS_SQL = r"""
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(s.setrole) END,
       CASE WHEN s.setdatabase = 0 THEN NULL ELSE d.datname END,
       c.setting
  FROM pg_catalog.pg_db_role_setting AS s
  LEFT JOIN pg_catalog.pg_database AS d ON d.oid = s.setdatabase,
       LATERAL pg_catalog.unnest(s.setconfig) AS c (setting)
 WHERE (s.setdatabase = 0 OR d.datname = pg_catalog.current_database())
   AND c.setting ~* '^dot_iu\.'
 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3
"""
MEMBERS_SQL = """
SELECT r.rolname, pg_catalog.string_agg(m.rolname, ', ' ORDER BY m.rolname)
  FROM pg_catalog.pg_auth_members AS a
  JOIN pg_catalog.pg_roles AS r ON r.oid = a.roleid
  JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
 WHERE r.rolname = ANY (%s)
 GROUP BY r.rolname
 ORDER BY r.rolname
"""


def _object(key: str) -> tuple[str, str]:
    """(ALTER/GRANT keyword, name) of a snapshot object key such as 'view public.v'."""
    kind, name = key.split(" ", 1)
    return {"table": "TABLE", "view": "TABLE", "function": "FUNCTION"}.get(kind, "TABLE"), name


def _quote(name: str) -> str:
    """A role or database name as a statement needs it (PUBLIC is a keyword here)."""
    if name == "PUBLIC" or re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'



def _grant_findings(want: dict[str, str], have: dict[str, str],
                    shared_lines: list[str]) -> list[str]:
    findings = []
    for key in sorted(set(want) | set(have)):
        if key not in want and shared.is_shared_grant(key, have[key]):
            shared_lines.append(shared.describe(key, have[key]))
            continue
        target, grantee = key.rsplit(" to ", 1)
        if target.startswith("column ") or grantee == "OWNER":
            if key in want and key in have and want[key] != have[key]:
                findings.append(f"{key}: {have[key] or 'nothing'} where the migrations give "
                                f"{want[key]}")
            continue
        keyword, name = _object(target)
        wanted = set(want.get(key, "").split(", ")) - {""}
        held = set(have.get(key, "").split(", ")) - {""}
        extra = sorted(privilege.rstrip("*") for privilege in held - wanted)
        lacks = sorted(privilege.rstrip("*") for privilege in wanted - held)
        if extra:
            findings.append(f"{target}: {grantee} holds {', '.join(extra)}, which the matrix "
                            f"does not give (repair: REVOKE {', '.join(extra)} ON {keyword} "
                            f"{name} FROM {_quote(grantee)})")
        if lacks:
            findings.append(f"{target}: {grantee} lacks {', '.join(lacks)} (repair: GRANT "
                            f"{', '.join(lacks)} ON {keyword} {name} TO {_quote(grantee)})")
    return findings


def _owner_findings(want: dict[str, str], live: dict) -> list[str]:
    findings = []
    for key, expected in sorted(want.items()):
        item = live.get(key)
        if item is None or item.fields["owner"] == expected:
            continue
        keyword, name = _object(key)
        keyword = "VIEW" if key.startswith("view ") else keyword
        actual = item.fields.get("actual", item.fields["owner"])
        findings.append(f"{key} is owned by {actual}, not {expected} (repair: ALTER {keyword} "
                        f"{name} OWNER TO {expected})")
    return findings


def _trigger_findings(want: dict[str, str], live: dict) -> list[str]:
    findings = []
    for key, line in sorted(want.items()):
        item = live.get(key)
        if item is None:
            continue
        expected = "ENABLE ALWAYS" if line.endswith("-- ENABLE ALWAYS") else "ENABLED"
        found = item.fields["enabled"]
        if found != expected:
            schema, table, trigger = key.split(".")
            how = "ENABLE ALWAYS" if expected == "ENABLE ALWAYS" else "ENABLE"
            findings.append(f"trigger {trigger} on {schema}.{table} is {found}, the migrations "
                            f"leave it {expected} (repair: ALTER TABLE {schema}.{table} {how} "
                            f"TRIGGER {trigger})")
    return findings


def _role_findings(conn) -> list[str]:
    findings = []
    rows = {row[0]: row[1:] for row in conn.execute(
        "SELECT rolname, " + ", ".join(column for column, _ in FORBIDDEN)
        + " FROM pg_catalog.pg_roles WHERE rolname = ANY (%s)", (list(ROLES),)).fetchall()}
    for role in ROLES:
        if role not in rows:
            findings.append(f"role {role} does not exist (the migrations create it: alembic "
                            "upgrade head)")
            continue
        wrong = [word for (_, word), held in zip(FORBIDDEN, rows[role], strict=True) if held]
        if wrong:
            findings.append(f"role {role} has {', '.join(wrong)}; a package role is a NOLOGIN "
                            f"group role (repair: ALTER ROLE {role} "
                            + " ".join(f"NO{word}" for word in wrong) + ")")
    return findings


SEQUENCE_GRANTS_SQL = r"""
SELECT pg_catalog.format('public.%%I', s.relname),
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
       pg_catalog.string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
  FROM pg_catalog.pg_class AS s
  JOIN pg_catalog.pg_depend AS d
    ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.oid AND d.deptype IN ('a', 'i')
  JOIN pg_catalog.pg_class AS t ON t.oid = d.refobjid,
       LATERAL pg_catalog.aclexplode(s.relacl) AS a
 WHERE s.relkind = 'S' AND t.relnamespace = 'public'::regnamespace
   AND s.relnamespace = t.relnamespace
   AND t.relname LIKE ANY (%s) AND a.grantee <> s.relowner
 GROUP BY 1, 2
 ORDER BY 1, 2
"""
# A package role that is a member of another role acts with that role's rights.
NESTED_SQL = """
SELECT m.rolname, r.rolname
  FROM pg_catalog.pg_auth_members AS a
  JOIN pg_catalog.pg_roles AS r ON r.oid = a.roleid
  JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
 WHERE m.rolname = ANY (%s)
 ORDER BY 1, 2
"""
# Roles that write every table of the database, past every grant of the matrix.
WRITE_ALL_SQL = """
SELECT r.rolname
  FROM pg_catalog.pg_roles AS r
 WHERE pg_catalog.to_regrole('pg_write_all_data') IS NOT NULL
   AND r.rolname <> 'pg_write_all_data' AND NOT r.rolsuper
   AND pg_catalog.pg_has_role(r.oid, 'pg_write_all_data', 'MEMBER')
 ORDER BY 1
"""


def _escalation_findings(conn) -> list[str]:
    findings = []
    for sequence, grantee, held in conn.execute(
            SEQUENCE_GRANTS_SQL, (list(schema_snapshot.OWNED_RELATIONS),)).fetchall():
        findings.append(f"sequence {sequence}: {grantee} holds {held} (a package table's "
                        f"identity: whoever may setval it can block the table's writers) "
                        f"(repair: REVOKE ALL ON SEQUENCE {sequence} FROM {_quote(grantee)})")
    for member, role in conn.execute(NESTED_SQL, (list(ROLES),)).fetchall():
        findings.append(f"role {member} is a member of {role}: a package role holds its own "
                        f"rights only (repair: REVOKE {_quote(role)} FROM {member})")
    for (role,) in conn.execute(WRITE_ALL_SQL).fetchall():
        findings.append(f"role {role} is a member of pg_write_all_data: it writes every package "
                        f"table directly, past the logger's and the gate protocol's rules "
                        f"(repair: REVOKE pg_write_all_data FROM {_quote(role)})")
    return findings


def section(conn, path: Path = COMMITTED) -> dict:
    if not path.exists():
        return {"ok": False, "strict_ok": True, "error": f"{path} does not exist; run: make "
                "schema", "summary": "no committed snapshot", "findings": []}
    if conn.execute("SELECT pg_catalog.to_regclass('public.substrate_privilege_handover')"
                    ).fetchone()[0] is None:
        return {"ok": True, "strict_ok": True, "findings": [],
                "summary": "not installed (a revision before 0010_least_privilege)"}
    _, want = schema_snapshot.parse(path.read_text())
    owned = any(value.endswith(": dot_iu_owner") for value in want.get("owners", {}).values())
    live = schema_snapshot.collect(conn, sections=("privileges", "owners", "triggers"))
    for key, item in live["owners"].items():
        item.fields["actual"] = conn.execute(
            "SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class AS c "
            "WHERE c.oid = pg_catalog.to_regclass(%s)" if not key.startswith("function ")
            else "SELECT pg_catalog.pg_get_userbyid(p.proowner) FROM pg_catalog.pg_proc AS p "
            "WHERE p.oid = pg_catalog.to_regprocedure(%s)", (key.split(" ", 1)[1],)
        ).fetchone()[0]

    def values(section: str) -> dict[str, str]:
        return {key: line.split(": ", 1)[1] if ": " in line else ""
                for key, line in want.get(section, {}).items()}

    # An object the database lacks is the objects section's finding; its grants are not
    # reported again here.
    present = set(live["owners"]) | {key.rsplit(" to ", 1)[0] for key in live["privileges"]}
    wanted = {key: value for key, value in values("privileges").items()
              if key.rsplit(" to ", 1)[0] in present}
    findings = _role_findings(conn) if owned else []
    findings += _owner_findings(values("owners"), live["owners"])
    shared_lines: list[str] = []
    findings += _grant_findings(wanted,
                                {key: item.fields["privileges"]
                                 for key, item in live["privileges"].items()}, shared_lines)
    findings += _trigger_findings(want.get("triggers", {}), live["triggers"])
    findings += _escalation_findings(conn)
    for role, database, setting in conn.execute(SETTINGS_SQL).fetchall():
        scope = (f"role {role} in database {database}" if role and database
                 else f"role {role}" if role else f"database {database}")
        name = setting.split("=", 1)[0]
        repair = (f"ALTER ROLE {_quote(role)}"
                  + (f" IN DATABASE {_quote(database)}" if database else "")
                  if role else f"ALTER DATABASE {_quote(database)}") + f" RESET {name}"
        findings.append(f"{setting} is stored for {scope}: the package's switches are set "
                        f"per transaction only (repair: {repair})")
    members = conn.execute(MEMBERS_SQL, (list(ROLES),)).fetchall()
    lines = [f"{role}: {names}" for role, names in members] or ["no role is a member of a "
                                                                 "package role"]
    grants = sum(1 for key in live["privileges"] if not key.endswith(" to OWNER"))
    return {
        "ok": not findings,
        "strict_ok": True,
        "members": {role: names.split(", ") for role, names in members},
        "summary": (f"{len(live['owners'])} objects, {grants} grant(s) beside the owners', "
                    f"{len(live['triggers'])} trigger(s): "
                    + ("as the matrix says" if not findings else f"{len(findings)} finding(s)")),
        "shared": shared_lines,
        "lines": [f"members: {line}" for line in lines]
                 + [f"shared: {line}" for line in shared_lines],
        "findings": findings,
    }
