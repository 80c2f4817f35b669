"""Least privilege (docs/roles.md): four group roles, one owner, a grant matrix the database
enforces, and the real login in every audit row.

The matrix below is the package's contract, object by object: a new package object without an
entry here fails the first test, so nothing ships without a decision about who may touch it.
Behaviour is proved with real LOGIN roles that connect (trust authentication), never only with
SET ROLE: session_user, which the ledgers record, is the login that connected.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pgtap
import psycopg
import pytest
from conftest import run_alembic
from gate_helpers import GATE, gate_open
from psycopg import sql

from substrate.devdb import server

OWNER, RUNTIME, GATE_OPERATOR, AUDITOR = (
    "dot_iu_owner", "dot_iu_runtime", "dot_iu_gate_operator", "dot_iu_auditor")
ROLES = (OWNER, RUNTIME, GATE_OPERATOR, AUDITOR)
EVERYONE = (RUNTIME, GATE_OPERATOR, AUDITOR)
READERS = (
    "fn_iu_composer_enabled()", "fn_iu_structure_ops_enabled()", "fn_iu_delivery_enabled()",
    "fn_iu_three_axis_auto_refresh_enabled()", "fn_iu_vector_sync_enabled()",
    "fn_dot_iu_operator_runtime_enabled()", "fn_queue_job_substrate_enabled()",
    "fn_queue_dlq_replay_enabled()",
)
# object -> the non-owner roles that hold its one privilege (SELECT on relations, EXECUTE on
# functions). Everything else: the owner only; PUBLIC nothing.
MATRIX: dict[str, tuple[str, ...]] = {
    "table public.alembic_version": (AUDITOR,),
    "table public.substrate_migration_history": (AUDITOR,),
    "table public.substrate_privilege_handover": (AUDITOR,),
    "table public.dot_config": (),
    "table public.dot_iu_command_catalog": EVERYONE,
    "table public.dot_iu_command_run": (AUDITOR,),
    "table public.dot_iu_command_run_tally": (AUDITOR,),
    "table public.dot_iu_command_run_tally_watermark": (AUDITOR,),
    "table public.dot_iu_gate_snapshot": (AUDITOR,),
    "table public.iu_gate_transition": (GATE_OPERATOR, AUDITOR),
    "table public.dot_iu_ledger_seal": (AUDITOR,),
    "table public.dot_iu_command_plan_use": (AUDITOR,),
    "table public.dot_iu_runtime_lease": (AUDITOR,),
    "view public.v_dot_iu_command_registry": EVERYONE,
    "view public.v_dot_iu_command_run_health": EVERYONE,
    "view public.v_dot_iu_gates": EVERYONE,
    "view public.v_dot_iu_runtime_lease": EVERYONE,
    "function public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)":
        (RUNTIME,),
    **{f"function public.{reader}": (RUNTIME, AUDITOR) for reader in READERS},
    "function public.fn_iu_gate_state(text)": EVERYONE,
    "function public.fn_iu_gate_classes()": (AUDITOR,),
    "function public.fn_iu_gate_open(text, text, text, text, integer)": (GATE_OPERATOR,),
    "function public.fn_iu_gate_close(text, text, text)": (GATE_OPERATOR,),
    "function public.fn_iu_gate_watchdog(text)": (GATE_OPERATOR,),
    "function public.fn_iu_gate_verify_closed(text)": (GATE_OPERATOR, AUDITOR),
    "function public.fn_iu_gate_record_refusal(text, text, text, text, text, text, numeric, "
    "text, text)": (GATE_OPERATOR,),
    "function public.fn_dot_iu_runtime_lease_acquire(text, text, integer)": (RUNTIME,),
    "function public.fn_dot_iu_runtime_lease_renew(text, text, bigint, integer)": (RUNTIME,),
    "function public.fn_dot_iu_runtime_lease_release(text, text, bigint)": (RUNTIME,),
    "function public.fn_dot_iu_runtime_apply_begin(text, text, text, bigint, text)": (RUNTIME,),
    "function public.fn_dot_iu_command_plan_check(bigint, text, text)": (RUNTIME,),
    "function public.fn_dot_iu_command_binding(text)": EVERYONE,
    "function public.fn_dot_iu_runtime_lease_break(text, text, text)": (GATE_OPERATOR,),
    # The owner's alone: internal writers, maintenance, triggers.
    **{f"function public.{name}": () for name in (
        "fn_dot_iu_append_only_guard()", "fn_dot_iu_command_run_tally_delete()",
        "fn_dot_iu_command_run_tally_fold()", "fn_dot_iu_command_run_tally_rebuild()",
        "fn_dot_iu_command_run_tally_truncate()", "fn_dot_iu_gate_snapshot_refresh()",
        "fn_dot_iu_gate_snapshot_sync()", "fn_iu_gate_log_run(text, text, text, jsonb)",
        "fn_dot_iu_text_problem(text, integer)", "fn_dot_iu_gate_guard()",
        "fn_dot_iu_ledger_chain_append(text, text, bigint, bigint, bigint, integer, text, "
        "timestamp with time zone, text, text, timestamp with time zone)",
        "fn_dot_iu_ledger_seal(text, bigint, bigint)", "fn_dot_iu_ledger_seal_transition()",
        "fn_dot_iu_ledger_retire(timestamp with time zone, text, text)",
        "fn_dot_iu_ledger_seal_guard()", "fn_iu_gate_reads_open(text)",
        "fn_dot_iu_gate_close_wait()", "fn_dot_iu_gate_open_keys(jsonb)",
    )},
}
# Every package object, by the package's naming (docs/objects.md).
OBJECTS_SQL = r"""
SELECT CASE c.relkind WHEN 'v' THEN 'view ' ELSE 'table ' END || 'public.' || c.relname,
       pg_catalog.pg_get_userbyid(c.relowner), c.relacl::text[]
  FROM pg_catalog.pg_class AS c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
   AND c.relname ~ '^(dot_config|dot_iu_.*|v_dot_iu_.*|iu_gate_.*|substrate_.*|alembic_version)$'
UNION ALL
SELECT 'function public.' || p.proname || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')',
       pg_catalog.pg_get_userbyid(p.proowner), p.proacl::text[]
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proname ~ '^(fn_dot_iu_.*|fn_iu_gate_.*|fn_iu_.*_enabled|fn_queue_.*_enabled)$'
"""
TABLES = [name.split(" ", 1)[1] for name in MATRIX if name.startswith("table ")]


def writes(conn, table: str) -> list[str]:
    """Every kind of write to ``table``, on a real column of it."""
    column = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attidentity = '' ORDER BY attnum LIMIT 1",
        (table,)).fetchone()[0]
    return [f"INSERT INTO {table} DEFAULT VALUES", f"UPDATE {table} SET {column} = {column}",
            f"DELETE FROM {table}", f"TRUNCATE {table}"]
_logins = itertools.count(1)


def grants(conn) -> dict[str, tuple[str, dict[str, set[str]]]]:
    """object -> (owner, {grantee: privileges}) for every package object."""
    found = {}
    for name, owner, acl in conn.execute(OBJECTS_SQL).fetchall():
        holders: dict[str, set[str]] = {}
        kind = "f" if name.startswith("function") else "r"
        for grantee, privilege in conn.execute(
                "SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type"
                "  FROM pg_catalog.aclexplode(coalesce(%s::aclitem[], pg_catalog.acldefault(%s,"
                "       (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)))) AS a"
                "  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee",
                (acl, kind, owner)).fetchall():
            if privilege != "MAINTAIN":  # PostgreSQL 17+ only
                holders.setdefault(grantee, set()).add(privilege)
        found[name] = (owner, holders)
    return found


@pytest.fixture
def login(pg, db_name):
    """login(*roles) -> a connection as a fresh LOGIN role that is a member of ``roles``."""
    made, conns = [], []

    def make(*roles: str) -> psycopg.Connection:
        name = f"lg_{os.getpid()}_{next(_logins)}"
        pg.admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        made.append(name)
        for role in roles:
            pg.admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role),
                                                              sql.Identifier(name)))
        conn = psycopg.connect(pg.conninfo(db_name).replace(f"user={pg.user}", f"user={name}"),
                               autocommit=True)
        conns.append(conn)
        return conn

    yield make
    for conn in conns:
        conn.close()
    for name in made:
        pg.admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_every_package_object_has_an_entry_in_the_matrix(db):
    names = set(grants(db))
    assert not names - set(MATRIX), f"objects without a matrix entry: {sorted(names - set(MATRIX))}"
    assert not set(MATRIX) - names, f"matrix entries with no object: {sorted(set(MATRIX) - names)}"


def test_the_owner_role_owns_every_package_object(db):
    wrong = {name: owner for name, (owner, _) in grants(db).items() if owner != OWNER}
    assert not wrong, f"objects not owned by {OWNER}: {wrong}"


def test_every_object_grants_exactly_what_the_matrix_says(db):
    problems = []
    for name, (_, holders) in sorted(grants(db).items()):
        privilege = "EXECUTE" if name.startswith("function") else "SELECT"
        want = {role: {privilege} for role in MATRIX[name]}
        have = {grantee: privileges for grantee, privileges in holders.items()
                if grantee != OWNER}
        if have != want:
            problems.append(f"{name}: have {have}, want {want}")
    assert not problems, "\n".join(problems)


def test_the_roles_are_nologin_group_roles_marked_as_the_package_s(db):
    rows = db.execute(
        "SELECT rolname, rolcanlogin, rolsuper, rolinherit, rolcreaterole, rolcreatedb, "
        "rolbypassrls, shobj_description(oid, 'pg_authid') FROM pg_roles "
        "WHERE rolname = ANY(%s) ORDER BY rolname", (list(ROLES),)).fetchall()
    assert [row[0] for row in rows] == sorted(ROLES)
    for name, can_login, superuser, _, createrole, createdb, bypassrls, comment in rows:
        assert (can_login, superuser, createrole, createdb, bypassrls) == (False,) * 5, name
        assert comment.startswith("IU Core substrate role, created by 0010_least_privilege"), name


def test_a_runtime_login_writes_no_table_opens_no_gate_and_forges_no_gate_row(db, login):
    conn = login(RUNTIME)
    for table in TABLES:
        for statement in writes(db, table):
            pgtap.throws_ok(conn, statement, "42501")
    pgtap.throws_ok(conn, "SELECT fn_iu_gate_open(%s, 'CHG-1', 'mallory', 'x', 60)", "42501",
                    params=(GATE,))
    pgtap.throws_ok(conn, "SELECT fn_iu_gate_close(%s, 'mallory', 'x')", "42501", params=(GATE,))
    for status in ("applied", "planned", "verified"):
        mode = {"applied": "apply", "planned": "plan", "verified": "verify"}[status]
        pgtap.throws_ok(conn, "SELECT fn_dot_iu_command_log('dot_iu_gate_close', %s, %s, "
                              "'mallory', repeat('a', 32))", "42501", params=(mode, status))
    pgtap.throws_ok(conn, "SELECT fn_iu_gate_log_run('dot_iu_gate_close', 'mallory', "
                          "repeat('a', 32), '{}')", "42501")
    pgtap.lives_ok(conn, "SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', "
                         "'svc', repeat('a', 32))")
    for relation in ("v_dot_iu_command_registry", "v_dot_iu_command_run_health",
                     "v_dot_iu_gates", "dot_iu_command_catalog"):
        pgtap.lives_ok(conn, f"SELECT * FROM {relation}")
    pgtap.throws_ok(conn, "SELECT * FROM dot_iu_command_run", "42501")


def test_an_auditor_reads_everything_and_writes_nothing(db, login):
    gate_open(db, gate=GATE, ttl=60)
    conn = login(AUDITOR)
    for name in MATRIX:
        kind, target = name.split(" ", 1)
        if kind in ("table", "view") and target != "public.dot_config":
            pgtap.lives_ok(conn, f"SELECT * FROM {target}")
    for table in TABLES:
        for statement in writes(db, table):
            pgtap.throws_ok(conn, statement, "42501")
    pgtap.throws_ok(conn, "SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', "
                          "'planned', 'a', repeat('a', 32))", "42501")
    pgtap.throws_ok(conn, "SELECT fn_iu_gate_close(%s, 'a', 'x')", "42501", params=(GATE,))
    report = conn.execute("SELECT fn_iu_gate_verify_closed()").fetchone()[0]
    assert report["all_governed_closed"] is False
    assert conn.execute("SELECT fn_iu_composer_enabled()").fetchone()[0] is True


def test_a_gate_operator_works_the_protocol_and_records_refusals_only(db, login):
    conn = login(GATE_OPERATOR)
    opened = conn.execute("SELECT fn_iu_gate_open(%s, 'CHG-1', 'ops', 'x', 60)",
                          (GATE,)).fetchone()[0]
    conn.execute("SELECT fn_iu_gate_close(%s, 'ops', 'x')", (GATE,))
    pgtap.lives_ok(conn, "SELECT fn_iu_gate_record_refusal('open', 'refused', %s, NULL, 'ops', "
                         "NULL, 60, '23514', 'no approval')", params=(GATE,))
    pgtap.throws_ok(conn, "SELECT fn_iu_gate_record_refusal('open', 'applied', %s, NULL, 'ops', "
                          "NULL, 60, '23514', 'x')", "22023", params=(GATE,))
    pgtap.throws_ok(conn, "SELECT fn_dot_iu_command_log('dot_iu_add_piece', 'apply', "
                          "'applied', 'ops', repeat('a', 32))", "42501")
    for table in TABLES:
        pgtap.throws_ok(conn, f"DELETE FROM {table}", "42501")
    assert opened["run_id"] > 0


def test_every_row_records_the_login_that_wrote_it_whatever_actor_claims(db, login):
    runtime, operator = login(RUNTIME), login(GATE_OPERATOR)
    runtime_name = runtime.info.user
    run_id = runtime.execute(
        "SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', %s, "
        "repeat('a', 32))", (operator.info.user,)).fetchone()[0]
    opened = operator.execute("SELECT fn_iu_gate_open(%s, 'CHG-1', %s, 'x', 60)",
                              (GATE, runtime_name)).fetchone()[0]
    rows = dict(db.execute("SELECT run_id, session_login FROM dot_iu_command_run "
                           "WHERE run_id IN (%s, %s)", (run_id, opened["run_id"])).fetchall())
    assert rows == {run_id: runtime_name, opened["run_id"]: operator.info.user}
    transition = db.execute("SELECT session_login, actor FROM iu_gate_transition "
                            "WHERE transition_id = %s", (opened["transition_id"],)).fetchone()
    assert transition == (operator.info.user, runtime_name)


def test_a_forged_gate_snapshot_is_not_recorded(db, login):
    runtime = login(RUNTIME)
    run_id = runtime.execute(
        "SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', 'svc', "
        "repeat('a', 32), '{}', %s)",
        ('{"iu_core.vector_sync_enabled": "true"}',)).fetchone()[0]
    snapshot = db.execute("SELECT gate_snapshot FROM dot_iu_command_run WHERE run_id = %s",
                          (run_id,)).fetchone()[0]
    assert snapshot["iu_core.vector_sync_enabled"] == "false"
    assert len(snapshot) == 9


@pytest.mark.parametrize("actor,evidence,fragment", [
    ("a" * 1_000_000, "{}", "at most 200"),
    ("a" * 201, "{}", "at most 200"),
    ("svc", '["not", "an", "object"]', "JSON object"),
    ("svc", '{"blob": "%s"}' % ("x" * 5000), "4096 bytes"),
    ("svc", '{"db_password": "hunter2"}', "names a secret"),
    ("svc", '{"Authorization": "Bearer x"}', "names a secret"),
    ("svc", '{"api_key": "k"}', "names a secret"),
])
def test_the_logger_refuses_oversized_or_secret_bearing_rows_22023(db, login, actor, evidence,
                                                                   fragment):
    runtime = login(RUNTIME)
    before = db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0]
    pgtap.throws_ok(runtime, "SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', "
                             "'planned', %s, repeat('a', 32), %s::jsonb)", "22023", fragment,
                    params=(actor, evidence))
    assert db.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0] == before


def test_two_databases_share_the_roles_and_one_downgrade_leaves_the_other_working(
        pg, alembic, tmp_path):
    names = [f"r2_{os.getpid()}_{i}" for i in range(2)]
    try:
        for name in names:
            pg.clone(name, "template0")
            alembic(pg.url(name), "upgrade", "head")
        result = alembic(pg.url(names[0]), "-x", "allow_data_loss=true", "downgrade",
                         "0009_tally_watermark")
        assert "left in place" in result.stderr, result.stderr
        with pg.connect(names[0]) as first:
            assert first.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)",
                                 (list(ROLES),)).fetchone()[0] == 4
            owners = first.execute("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                                   "WHERE relname LIKE 'dot_iu_%'").fetchall()
            assert owners == [(pg.user,)], "the previous owner is back"
        with pg.connect(names[1]) as second:
            second.execute("SET ROLE dot_iu_runtime")
            second.execute("SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', "
                           "'planned', 'svc', repeat('a', 32))")
            second.execute("RESET ROLE")
            assert second.execute("SELECT count(*) FROM dot_iu_command_run").fetchone()[0] == 1
    finally:
        for name in names:
            pg.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


# -- a cluster of its own: what the downgrade does when nothing else uses the roles -----------


@pytest.fixture(scope="module")
def lone_cluster(pg):
    """A throw-away cluster no other database uses: roles can really be dropped there."""
    if pg.bindir is None:
        pytest.skip("needs the embedded server's binaries (TEST_DATABASE_URL points elsewhere)")
    rundir = Path(tempfile.mkdtemp(prefix="substrate-roles-"))
    cluster = server.Cluster(bindir=pg.bindir, rundir=rundir, port=server.free_port(),
                             settings=server.FAST_SETTINGS)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(rundir, ignore_errors=True)


@pytest.fixture
def lone_db(lone_cluster):
    name = f"lone_{next(_logins)}"
    with psycopg.connect(lone_cluster.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(lone_cluster.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        for role in (*ROLES, "dba_made", "migrator"):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _roles(cluster) -> list[str]:
    with psycopg.connect(cluster.conninfo("postgres")) as conn:
        return [row[0] for row in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'dot\\_iu\\_%' ORDER BY 1")]


def test_the_last_database_to_downgrade_drops_the_roles_it_created(lone_cluster, lone_db):
    url = lone_cluster.url(lone_db)
    run_alembic(url, "upgrade", "head")
    assert _roles(lone_cluster) == sorted(ROLES)
    result = run_alembic(url, "-x", "allow_data_loss=true", "downgrade", "0009_tally_watermark")
    assert "dropped role dot_iu_owner" in result.stderr
    assert _roles(lone_cluster) == []
    run_alembic(url, "upgrade", "head")
    assert _roles(lone_cluster) == sorted(ROLES)


def test_roles_a_dba_created_beforehand_are_used_and_left_in_place(lone_cluster, lone_db):
    with psycopg.connect(lone_cluster.conninfo("postgres"), autocommit=True) as admin:
        for role in ROLES:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    url = lone_cluster.url(lone_db)
    result = run_alembic(url, "upgrade", "head")
    assert "created role" not in result.stderr
    result = run_alembic(url, "-x", "allow_data_loss=true", "downgrade", "0009_tally_watermark")
    assert "left in place: this package did not create it" in result.stderr
    assert _roles(lone_cluster) == sorted(ROLES)


def test_an_existing_package_role_that_can_log_in_is_refused(lone_cluster, lone_db):
    with psycopg.connect(lone_cluster.conninfo("postgres"), autocommit=True) as admin:
        admin.execute("CREATE ROLE dot_iu_runtime LOGIN")
    result = run_alembic(lone_cluster.url(lone_db), "upgrade", "head", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "SQLSTATE 42501" in output and "dot_iu_runtime (LOGIN)" in output
    assert "Traceback" not in output


def test_a_migrating_login_that_may_not_act_as_the_owner_is_refused_with_the_remedy(
        lone_cluster, lone_db):
    with psycopg.connect(lone_cluster.conninfo("postgres"), autocommit=True) as admin:
        for role in ROLES:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        admin.execute("CREATE ROLE migrator LOGIN CREATEROLE")
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO migrator").format(
            sql.Identifier(lone_db)))
    url = lone_cluster.url(lone_db).replace("//postgres@", "//migrator@")
    run_alembic(url, "upgrade", "0009_tally_watermark")
    result = run_alembic(url, "upgrade", "head", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "SQLSTATE 42501" in output
    assert "GRANT dot_iu_owner TO" in output
    with psycopg.connect(lone_cluster.conninfo("postgres"), autocommit=True) as admin:
        admin.execute("GRANT dot_iu_owner TO migrator")
    run_alembic(url, "upgrade", "head")
    with psycopg.connect(lone_cluster.conninfo(lone_db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] != \
            "0009_tally_watermark"
