"""Least privilege: the package's roles, its owner, its grants, and a real login in every audit row.

Revision ID: 0010_least_privilege
Revises: 0009_tally_watermark

Creates (docs/roles.md):
- the NOLOGIN group roles dot_iu_owner, dot_iu_runtime, dot_iu_gate_operator and dot_iu_auditor,
  each only when absent (roles are cluster-wide: another database of the cluster, or a DBA, may
  have created them already; a role created here is marked by its comment). Refuses (42501)
  when one of them exists with LOGIN, SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or
  BYPASSRLS, and when the migrating login may not act as dot_iu_owner afterwards (it must be a
  superuser, or hold CREATEROLE and be granted dot_iu_owner; or a DBA creates the roles first);
- table substrate_privilege_handover: what this step changed that its downgrade gives back
  (each object's previous owner, each schema privilege it granted);
- USAGE and CREATE on schema public for dot_iu_owner, USAGE for the other three, where they do
  not hold them yet;
- ownership of every package object (9 tables, 2 views, 19 functions; identity sequences move
  with their tables) to dot_iu_owner; from here on the step acts as dot_iu_owner, as every
  later revision does (revision_helpers_v1.begin);
- column session_login (the authenticated login, session_user) on dot_iu_command_run and
  iu_gate_transition: nullable, so rows written before this step keep NULL (their login was
  never recorded) and no row is rewritten; default session_user; a NOT VALID check that every
  new row names its login;
- fn_dot_iu_command_log v4 (same signature): records session_login, always the live gate
  snapshot, refuses an actor over 200 characters or evidence that is not a JSON object of at
  most 4 KiB (22023), and applied rows of the dot_iu_gate_* commands (42501);
- fn_iu_gate_log_run v1 (owner only): the gate protocol's own ledger writer;
- fn_iu_gate_record_refusal v1: records a refused or failed gate call (the CLI's refusal audit);
- fn_iu_gate_open, fn_iu_gate_close and fn_iu_gate_watchdog v3: write through fn_iu_gate_log_run
  and record session_login on their transitions;
- the grants of the privilege matrix (GRANTS below); nothing for PUBLIC.
Locks: ACCESS EXCLUSIVE on the run ledger first (the order its writers take it in, so a logger
in flight never deadlocks with the step), then on each table while its owner changes and its
column is added (catalog changes only: no scan, no rewrite), held until the step commits.
Requires: 0009_tally_watermark.
Reverses: refuses while a ledger row records a login, unless -x allow_data_loss=true (the
column goes); then revokes the grants, restores logger v3 and gate functions v2, drops the
new functions, the check, default and columns, gives every object back to its previous owner,
revokes the schema privileges it granted, drops the handover table, and drops each package role
that this package created and that nothing in the cluster uses any more (an object, a grant or
a membership in any database); a role still in use is left in place, and a NOTICE says why.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0010_least_privilege"
down_revision = "0009_tally_watermark"
branch_labels = None
depends_on = None

HANDOVER = "public.substrate_privilege_handover"
ROLE_COMMENT_PREFIX = "IU Core substrate role, created by 0010_least_privilege: "
ROLE_PURPOSES = (
    (h.OWNER, "owns every object of the package; migrations act as it; never logs in."),
    (h.RUNTIME, "the operator runtime: writes the run ledger through its logger, reads the "
                "catalog, the views and the gates."),
    (h.GATE_OPERATOR, "opens, closes and watches the gates through the gate protocol."),
    (h.AUDITOR, "reads the catalog, both ledgers and the views; writes nothing."),
)
FORBIDDEN_ATTRIBUTES = (
    ("rolcanlogin", "LOGIN"), ("rolsuper", "SUPERUSER"), ("rolcreatedb", "CREATEDB"),
    ("rolcreaterole", "CREATEROLE"), ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
)
SCHEMA_PRIVILEGES = (
    ("USAGE", h.OWNER), ("CREATE", h.OWNER), ("USAGE", h.RUNTIME),
    ("USAGE", h.GATE_OPERATOR), ("USAGE", h.AUDITOR),
)

LOG = "public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)"
GATE_OPEN = "public.fn_iu_gate_open(text, text, text, text, integer)"
GATE_CLOSE = "public.fn_iu_gate_close(text, text, text)"
GATE_WATCHDOG = "public.fn_iu_gate_watchdog(text)"
GATE_VERIFY = "public.fn_iu_gate_verify_closed(text)"
GATE_CLASSES = "public.fn_iu_gate_classes()"
LOG_RUN = "public.fn_iu_gate_log_run(text, text, text, jsonb)"
RECORD_REFUSAL = (
    "public.fn_iu_gate_record_refusal(text, text, text, text, text, text, numeric, text, text)"
)
READERS = (
    "public.fn_iu_composer_enabled()",
    "public.fn_iu_structure_ops_enabled()",
    "public.fn_iu_delivery_enabled()",
    "public.fn_iu_three_axis_auto_refresh_enabled()",
    "public.fn_iu_vector_sync_enabled()",
    "public.fn_dot_iu_operator_runtime_enabled()",
)
CATALOG = "public.dot_iu_command_catalog"
LEDGER = "public.dot_iu_command_run"
TRANSITIONS = "public.iu_gate_transition"
REGISTRY_VIEW = "public.v_dot_iu_command_registry"
HEALTH_VIEW = "public.v_dot_iu_command_run_health"

# Every package object at 0009_tally_watermark, given to the owner in this order (functions,
# views, then tables, the ledger last: its ACCESS EXCLUSIVE lock is held the shortest).
FUNCTIONS = (
    "public.fn_dot_iu_append_only_guard()",
    LOG,
    "public.fn_dot_iu_command_run_tally_delete()",
    "public.fn_dot_iu_command_run_tally_fold()",
    "public.fn_dot_iu_command_run_tally_rebuild()",
    "public.fn_dot_iu_command_run_tally_truncate()",
    "public.fn_dot_iu_gate_snapshot_refresh()",
    "public.fn_dot_iu_gate_snapshot_sync()",
    *READERS,
    GATE_CLASSES,
    GATE_CLOSE,
    GATE_OPEN,
    GATE_VERIFY,
    GATE_WATCHDOG,
)
VIEWS = (REGISTRY_VIEW, HEALTH_VIEW)
TABLES = (
    "public.alembic_version",
    "public.substrate_migration_history",
    "public.dot_config",
    CATALOG,
    "public.dot_iu_gate_snapshot",
    "public.dot_iu_command_run_tally",
    "public.dot_iu_command_run_tally_watermark",
    TRANSITIONS,
    LEDGER,
)

# The privilege matrix at this revision: (privilege, object kind, object, roles). The owner
# holds everything on what it owns; PUBLIC holds nothing; nobody but the owner writes a table.
GRANTS = (
    ("EXECUTE", "FUNCTION", LOG, (h.RUNTIME,)),
    *(("EXECUTE", "FUNCTION", reader, (h.RUNTIME, h.AUDITOR)) for reader in READERS),
    ("EXECUTE", "FUNCTION", GATE_OPEN, (h.GATE_OPERATOR,)),
    ("EXECUTE", "FUNCTION", GATE_CLOSE, (h.GATE_OPERATOR,)),
    ("EXECUTE", "FUNCTION", GATE_WATCHDOG, (h.GATE_OPERATOR,)),
    ("EXECUTE", "FUNCTION", GATE_VERIFY, (h.GATE_OPERATOR, h.AUDITOR)),
    ("EXECUTE", "FUNCTION", RECORD_REFUSAL, (h.GATE_OPERATOR,)),
    ("EXECUTE", "FUNCTION", GATE_CLASSES, (h.AUDITOR,)),
    ("SELECT", "TABLE", CATALOG, (h.RUNTIME, h.GATE_OPERATOR, h.AUDITOR)),
    ("SELECT", "TABLE", REGISTRY_VIEW, (h.RUNTIME, h.GATE_OPERATOR, h.AUDITOR)),
    ("SELECT", "TABLE", HEALTH_VIEW, (h.RUNTIME, h.GATE_OPERATOR, h.AUDITOR)),
    ("SELECT", "TABLE", TRANSITIONS, (h.GATE_OPERATOR, h.AUDITOR)),
    ("SELECT", "TABLE", LEDGER, (h.AUDITOR,)),
    ("SELECT", "TABLE", "public.dot_iu_command_run_tally", (h.AUDITOR,)),
    ("SELECT", "TABLE", "public.dot_iu_command_run_tally_watermark", (h.AUDITOR,)),
    ("SELECT", "TABLE", "public.dot_iu_gate_snapshot", (h.AUDITOR,)),
    ("SELECT", "TABLE", "public.substrate_migration_history", (h.AUDITOR,)),
    ("SELECT", "TABLE", "public.alembic_version", (h.AUDITOR,)),
    ("SELECT", "TABLE", HANDOVER, (h.AUDITOR,)),
)

LOG_COMMENT_V3 = (
    "The only writer of the run ledger; returns run_id. Ungated; raises 23503 for a command "
    "absent from a non-empty catalog."
)
LOG_COMMENT_V4 = (
    "The run ledger's writer for everyone but the gate protocol; returns run_id. Ungated; "
    "records session_user and the live gate snapshot (p_gate_snapshot is ignored); raises 23503 "
    "for a command absent from a non-empty catalog, 22023 for an actor over 200 characters or "
    "evidence that is not a JSON object of at most 4 KiB, 42501 for a dot_iu_gate_* row that is "
    "not refused or failed."
)
LOG_RUN_COMMENT = (
    "The gate protocol's own run-ledger writer: the applied row of an open, close or watchdog "
    "close. EXECUTE for the owner only, so only the fn_iu_gate_* functions reach it."
)
RECORD_REFUSAL_COMMENT = (
    "Records a refused or failed gate call as one run-ledger row of its dot_iu_gate_* command: "
    "the digest the gate function computes, evidence {sqlstate, message, gate}, never the "
    "approval or reason. The refusal audit of substrate gates and the operator runtime."
)
SESSION_LOGIN_COMMENT = (
    "The authenticated login (session_user) of the session that wrote the row, recorded by the "
    "writing function whatever actor claims. NULL only for rows written before "
    "0010_least_privilege, when no login was recorded."
)
HANDOVER_COMMENT = (
    "What 0010_least_privilege changed that its downgrade gives back: the previous owner of "
    "each package object (action owner) and each schema privilege it granted (action grant)."
)
GATE_WRITERS = ("fn_iu_gate_open", "fn_iu_gate_close", "fn_iu_gate_watchdog")


def _roles_array() -> str:
    return "ARRAY[" + ", ".join(h.literal(role) for role, _ in ROLE_PURPOSES) + "]"


def _role_comment() -> str:
    """CASE v_role WHEN <role> THEN <the comment that marks it as created by this package>."""
    whens = "\n".join(
        f"        WHEN {h.literal(role)} THEN {h.literal(ROLE_COMMENT_PREFIX + purpose)}"
        for role, purpose in ROLE_PURPOSES)
    return f"(CASE v_role\n{whens}\n    END)"


def upgrade() -> None:
    h.begin(expected_version=down_revision, as_owner=False)
    # The run ledger first, as its writers take it (the INSERT locks its target before the
    # catalog it reads): a logger in flight then never holds the ledger while it waits for a
    # table this step already holds, which would deadlock (docs/migrations.md, "Locks").
    h.execute("LOCK TABLE public.dot_iu_command_run IN ACCESS EXCLUSIVE MODE")
    refused = " OR ".join(f"r.{column}" for column, _ in FORBIDDEN_ATTRIBUTES)
    named = ", ".join(f"CASE WHEN r.{column} THEN '{word}' END"
                      for column, word in FORBIDDEN_ATTRIBUTES)
    h.execute(
        f"""
DO $roles$
DECLARE
    v_role text;
    v_wrong text;
BEGIN
    SELECT pg_catalog.string_agg(r.rolname || ' (' || pg_catalog.concat_ws(', ', {named}) || ')',
                                 '; ' ORDER BY r.rolname)
      INTO v_wrong
      FROM pg_catalog.pg_roles AS r
     WHERE r.rolname = ANY ({_roles_array()}) AND ({refused});
    IF v_wrong IS NOT NULL THEN
        RAISE EXCEPTION 'package role(s) exist with attributes a group role must not have: %', v_wrong
            USING ERRCODE = '42501',
                  HINT = 'The package roles are NOLOGIN group roles; logins get membership (docs/roles.md).';
    END IF;
    FOREACH v_role IN ARRAY {_roles_array()} LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role);
        BEGIN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_role);
            EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', v_role, {_role_comment()});
            RAISE NOTICE 'created role %', v_role;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            RAISE NOTICE 'role % was created meanwhile by another session of this cluster', v_role;
        END;
    END LOOP;
    IF NOT (CASE WHEN pg_catalog.current_setting('server_version_num')::integer >= 160000
                 THEN pg_catalog.pg_has_role(session_user, {h.literal(h.OWNER)}, 'SET')
                 ELSE pg_catalog.pg_has_role(session_user, {h.literal(h.OWNER)}, 'MEMBER') END) THEN
        RAISE EXCEPTION 'the migrating login % may not act as {h.OWNER}', session_user
            USING ERRCODE = '42501',
                  HINT = 'Migrate as a superuser, or GRANT {h.OWNER} TO the migrating login (docs/roles.md).';
    END IF;
END
$roles$"""
    )

    h.execute(
        f"""
CREATE TABLE {HANDOVER} (
    action text NOT NULL,
    object text NOT NULL,
    previous_owner text,
    CONSTRAINT pk_substrate_privilege_handover PRIMARY KEY (action, object),
    CONSTRAINT ck_substrate_privilege_handover_action CHECK (action IN ('owner', 'grant')),
    CONSTRAINT ck_substrate_privilege_handover_owner
        CHECK ((action = 'owner') = (previous_owner IS NOT NULL))
)"""
    )
    h.execute(f"REVOKE ALL ON TABLE {HANDOVER} FROM PUBLIC")
    h.comment("TABLE", HANDOVER, HANDOVER_COMMENT)

    privileges = ", ".join(f"({h.literal(p)}, {h.literal(r)})" for p, r in SCHEMA_PRIVILEGES)
    h.execute(
        f"""
DO $schema$
DECLARE
    v_privilege text;
    v_role text;
BEGIN
    FOR v_privilege, v_role IN SELECT p.privilege, p.role
                                 FROM (VALUES {privileges}) AS p (privilege, role) LOOP
        CONTINUE WHEN EXISTS (
            SELECT 1
              FROM pg_catalog.pg_namespace AS n,
                   LATERAL pg_catalog.aclexplode(n.nspacl) AS a
             WHERE n.nspname = 'public'
               AND a.grantee = (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role)
               AND a.privilege_type = v_privilege);
        EXECUTE pg_catalog.format('GRANT %s ON SCHEMA public TO %I', v_privilege, v_role);
        INSERT INTO {HANDOVER} (action, object)
        VALUES ('grant', pg_catalog.format('%s ON SCHEMA public TO %I', v_privilege, v_role));
    END LOOP;
END
$schema$"""
    )

    relations = ",\n           ".join(
        f"('{kind}', {h.literal(name)}::pg_catalog.regclass)"
        for kind, names in (("VIEW", VIEWS), ("TABLE", TABLES)) for name in names)
    functions = ",\n           ".join(
        f"({h.literal(signature)}::pg_catalog.regprocedure)" for signature in FUNCTIONS)
    h.execute(
        f"""
INSERT INTO {HANDOVER} (action, object, previous_owner)
SELECT 'owner', o.kind || ' ' || o.name::text, pg_catalog.pg_get_userbyid(c.relowner)
  FROM (VALUES {relations}) AS o (kind, name)
  JOIN pg_catalog.pg_class AS c ON c.oid = o.name
UNION ALL
SELECT 'owner', 'FUNCTION ' || f.name::text, pg_catalog.pg_get_userbyid(p.proowner)
  FROM (VALUES {functions}) AS f (name)
  JOIN pg_catalog.pg_proc AS p ON p.oid = f.name"""
    )
    for signature in FUNCTIONS:
        h.execute(f"ALTER FUNCTION {signature} OWNER TO {h.OWNER}")
    for name in VIEWS:
        h.execute(f"ALTER VIEW {name} OWNER TO {h.OWNER}")
    h.execute(f"ALTER TABLE {HANDOVER} OWNER TO {h.OWNER}")
    for name in TABLES:
        h.execute(f"ALTER TABLE {name} OWNER TO {h.OWNER}")

    # From here on the step acts as the owner, as every later revision does.
    h.execute(f"SET LOCAL ROLE {h.OWNER}")
    for table, check in ((TRANSITIONS, "ck_iu_gate_transition_session_login"),
                         (LEDGER, "ck_dot_iu_command_run_session_login")):
        h.execute(f"ALTER TABLE {table} ADD COLUMN session_login text")
        h.execute(f"ALTER TABLE {table} ALTER COLUMN session_login SET DEFAULT session_user")
        h.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK (session_login IS NOT NULL) NOT VALID"
        )
        h.comment("COLUMN", f"{table}.session_login", SESSION_LOGIN_COMMENT)

    h.new_function("fn_iu_gate_log_run.v1.sql", LOG_RUN, LOG_RUN_COMMENT)
    for name in GATE_WRITERS:
        h.function_file(f"{name}.v3.sql")
    h.function_file("fn_dot_iu_command_log.v4.sql")
    h.comment("FUNCTION", LOG, LOG_COMMENT_V4)
    h.new_function("fn_iu_gate_record_refusal.v1.sql", RECORD_REFUSAL, RECORD_REFUSAL_COMMENT)

    for privilege, kind, name, roles in GRANTS:
        h.grant(privilege, kind, name, roles)


def downgrade() -> None:
    h.begin(expected_version=revision, as_owner=True)
    # The run ledger first, as its writers take it (the INSERT locks its target before the
    # catalog it reads): a logger in flight then never holds the ledger while it waits for a
    # table this step already holds, which would deadlock (docs/migrations.md, "Locks").
    h.execute("LOCK TABLE public.dot_iu_command_run IN ACCESS EXCLUSIVE MODE")
    h.execute(
        f"""
DO $rollback$
DECLARE
    v_runs bigint := (SELECT pg_catalog.count(*) FROM {LEDGER} AS r
                       WHERE r.session_login IS NOT NULL);
    v_transitions bigint := (SELECT pg_catalog.count(*) FROM {TRANSITIONS} AS t
                              WHERE t.session_login IS NOT NULL);
BEGIN
    RAISE NOTICE 'pre-rollback counts: % run(s) and % transition(s) record their login',
        v_runs, v_transitions;
    IF v_runs + v_transitions > 0 AND NOT {h.allow_data_loss()} THEN
        RAISE EXCEPTION 'refusing to drop session_login: % ledger row(s) record who wrote them',
                v_runs + v_transitions
            USING ERRCODE = '55000',
                  HINT = 'Export them first, then re-run with -x allow_data_loss=true.';
    END IF;
END
$rollback$"""
    )
    for privilege, kind, name, roles in reversed(GRANTS):
        h.revoke(privilege, kind, name, roles)

    h.drop_function(RECORD_REFUSAL)
    h.comment("FUNCTION", LOG, LOG_COMMENT_V3)
    h.function_file("fn_dot_iu_command_log.v3.sql")
    for name in reversed(GATE_WRITERS):
        h.function_file(f"{name}.v2.sql")
    h.drop_function(LOG_RUN)

    for table, check in ((LEDGER, "ck_dot_iu_command_run_session_login"),
                         (TRANSITIONS, "ck_iu_gate_transition_session_login")):
        h.execute(f"ALTER TABLE {table} DROP CONSTRAINT {check}")
        h.execute(f"ALTER TABLE {table} ALTER COLUMN session_login DROP DEFAULT")
        h.execute(f"ALTER TABLE {table} DROP COLUMN session_login")

    # Back to the migrating login: the previous owners are logins the owner role may not name.
    h.execute("RESET ROLE")
    h.execute(
        f"""
DO $owners$
DECLARE
    v_object text;
    v_owner text;
BEGIN
    FOR v_object, v_owner IN SELECT o.object, o.previous_owner FROM {HANDOVER} AS o
                              WHERE o.action = 'owner' ORDER BY o.object LOOP
        EXECUTE pg_catalog.format('ALTER %s OWNER TO %I', v_object, v_owner);
    END LOOP;
    FOR v_object IN SELECT o.object FROM {HANDOVER} AS o
                     WHERE o.action = 'grant' ORDER BY o.object LOOP
        EXECUTE 'REVOKE ' || pg_catalog.replace(v_object, ' TO ', ' FROM ');
    END LOOP;
END
$owners$"""
    )
    h.execute(f"DROP TABLE {HANDOVER}")

    h.execute(
        f"""
DO $roles$
DECLARE
    v_role text;
    v_oid oid;
    v_uses bigint;
    v_members bigint;
BEGIN
    FOREACH v_role IN ARRAY ARRAY[{', '.join(h.literal(r) for r, _ in reversed(ROLE_PURPOSES))}] LOOP
        SELECT r.oid INTO v_oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role;
        IF v_oid IS NULL THEN
            RAISE NOTICE 'role % no longer exists', v_role;
            CONTINUE;
        END IF;
        IF pg_catalog.shobj_description(v_oid, 'pg_authid') IS DISTINCT FROM {_role_comment()} THEN
            RAISE NOTICE 'role % left in place: this package did not create it', v_role;
            CONTINUE;
        END IF;
        SELECT pg_catalog.count(*) INTO v_uses
          FROM pg_catalog.pg_shdepend AS d
         WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND d.refobjid = v_oid;
        SELECT pg_catalog.count(*) INTO v_members
          FROM pg_catalog.pg_auth_members AS m
         WHERE (m.roleid = v_oid AND m.member <> (SELECT r.oid FROM pg_catalog.pg_roles AS r
                                                   WHERE r.rolname = session_user))
            OR m.member = v_oid;
        IF v_uses + v_members > 0 THEN
            RAISE NOTICE 'role % left in place: % object(s) or grant(s) in the databases of this cluster and % membership(s) still use it',
                v_role, v_uses, v_members;
            CONTINUE;
        END IF;
        EXECUTE pg_catalog.format('DROP ROLE %I', v_role);
        RAISE NOTICE 'dropped role %', v_role;
    END LOOP;
END
$roles$"""
    )
