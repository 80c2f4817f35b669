"""What a database at a revision should contain, built for real rather than read from a file.

``build(url, revision)`` creates a scratch database on the server at ``url`` (``CREATE DATABASE
substrate_<purpose>_<random> TEMPLATE template0``), runs the tree's ``alembic upgrade
<revision>`` there exactly as a deploy does (a subprocess of ``python -m alembic``, the URL in
the environment so no password shows in a process list), takes its snapshot, and always drops
the scratch database (``WITH (FORCE)``), whatever happened. Advisory locks are per database, so
the scratch upgrade never waits for, nor blocks, a migration of the live database.

Default privileges (``ALTER DEFAULT PRIVILEGES``) are per database: a production database that
grants every new table to a reporting role would otherwise show those grants as unexpected.
``default_privileges(live)`` reads them as statements that ``build`` replays in the scratch
database before migrating it, so the expected state is what the migrations build *there*.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import psycopg
from psycopg import sql

from substrate import connect
from substrate.review import schema_snapshot
from substrate.review.tree import Tree


class CannotBuild(RuntimeError):
    """The expected state could not be built; the message says why and what to do."""


def scratch_url(url: str, database: str) -> str:
    """``url`` with its database replaced (user, password, host and options kept)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


def may_create_databases(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT rolcreatedb OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])


_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}
DEFAULT_ACL_SQL = """
SELECT pg_catalog.pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype,
       CASE a.grantee WHEN 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_default_acl d
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace,
       LATERAL pg_catalog.aclexplode(d.defaclacl) a
 ORDER BY 1, 2 NULLS FIRST, 3, 4 NULLS FIRST, 5
"""


def default_privileges(conn: psycopg.Connection) -> list[sql.Composed]:
    """The live database's default privileges as ALTER DEFAULT PRIVILEGES statements.

    A global entry (no schema) replaces the built-in defaults, so it is replayed as REVOKE ALL
    from PUBLIC and from the role itself, then its grants; a per-schema entry only adds."""
    statements: list[sql.Composed] = []
    reset = set()
    for role, schema, objtype, grantee, privilege, grantable in conn.execute(
            DEFAULT_ACL_SQL).fetchall():
        head = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}").format(sql.Identifier(role))
        if schema:
            head += sql.SQL(" IN SCHEMA {}").format(sql.Identifier(schema))
        kind = sql.SQL(_OBJECTS[objtype])
        if schema is None and (role, objtype) not in reset:
            reset.add((role, objtype))
            statements.append(head + sql.SQL(" REVOKE ALL ON {} FROM PUBLIC").format(kind))
            statements.append(head + sql.SQL(" REVOKE ALL ON {} FROM {}").format(
                kind, sql.Identifier(role)))
        statements.append(head + sql.SQL(" GRANT {} ON {} TO {}{}").format(
            sql.SQL(privilege), kind,
            sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
            sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL("")))
    return statements


def upgrade(url: str, revision: str, tree: Tree) -> None:
    """``alembic upgrade <revision>`` on ``url`` with the tree's alembic.ini; raise on failure."""
    env = {**os.environ, "DATABASE_URL": url}
    for target in revision.split(","):
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(tree.ini), "upgrade", target],
            capture_output=True, text=True, env=env, cwd=tree.ini.parent,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
            raise CannotBuild(f"alembic upgrade {target} failed in the scratch database:\n{tail}")


def build(url: str, revision: str, tree: Tree | None = None, purpose: str = "drift",
          prepare: list[sql.Composed] | None = None,
          notes: list[str] | None = None) -> schema_snapshot.Snapshot:
    """The snapshot of a fresh database migrated to ``revision`` on the server at ``url``.

    ``prepare`` runs in the scratch database first (``default_privileges`` of the live one); a
    statement the scratch server refuses (a role it lacks) is skipped and noted in ``notes``."""
    tree = tree or Tree()
    name = f"substrate_{purpose}_{secrets.token_hex(4)}"
    try:
        server = connect.connect(url, application_name="substrate scratch",
                                 statement_default=connect.REVIEW)
    except connect.CannotConnect as error:
        raise CannotBuild(f"{error} (to build the expected state)") from None
    with server:
        if not may_create_databases(server):
            raise CannotBuild(
                f"role {server.info.user!r} may not create databases: the expected state is "
                "built by migrating a scratch database (grant CREATEDB, or pass --scratch-url "
                "with a server and role that may)"
            )
        try:
            server.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(name)))
        except psycopg.Error as error:
            raise CannotBuild(f"cannot create the scratch database {name}: {error}") from error
        try:
            target = scratch_url(url, name)
            if prepare:
                _prepare(target, prepare, notes if notes is not None else [])
            upgrade(target, revision, tree)
            with connect.connect(target, application_name="substrate scratch",
                                 statement_default=connect.REVIEW) as scratch:
                return schema_snapshot.collect(scratch)
        except connect.CannotConnect as error:
            raise CannotBuild(f"{error} (the scratch database {name})") from None
        finally:
            server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def _prepare(url: str, statements: list[sql.Composed], notes: list[str]) -> None:
    with connect.connect(url, application_name="substrate scratch",
                         statement_default=connect.REVIEW) as scratch:
        for statement in statements:
            try:
                scratch.execute(statement)
            except psycopg.Error as error:
                notes.append(f"default privilege not replayed in the scratch database "
                             f"({statement.as_string(scratch)}): {error.diag.message_primary}")
