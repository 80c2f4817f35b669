"""Revision helpers, version 1: how every revision from 0010_least_privilege on speaks SQL.

Revisions up to 0009 carry their own copy of ``_execute``/``_begin``; from 0010 on they import
these, found through ``prepend_sys_path`` in alembic.ini. This file is part of released history:
``make check-history`` locks it with the revisions that import it, so it is never edited once
released. A new helper, or a changed one, goes into ``revision_helpers_v2.py`` and only the
revisions written after it import that (docs/maintaining.md, "Change a function or view").

What the helpers guarantee (docs/migrations.md):

* every statement is raw SQL, run online or rendered into ``--sql`` output byte for byte the
  same (``execute``); SQL files come from ``sql_functions/`` and ``sql_views/``, one immutable
  file per version (``function_file``, ``view_file``);
* a step opens with its ``lock_timeout``, a guard that the database is at the revision the step
  expects, a guard that the migrating login may act as the package owner, then
  ``SET LOCAL ROLE dot_iu_owner``: every object the step creates is owned by the owner role,
  never by a login (``begin``);
* the package's privilege matrix is spelled in one place (``ROLES`` and the grant helpers), and
  every object a revision creates gets its comment, ``REVOKE ALL ... FROM PUBLIC`` and exactly
  the grants the matrix gives it (``new_function``, ``new_table``, ``new_view``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = PROJECT_ROOT / "sql_functions"
VIEWS_DIR = PROJECT_ROOT / "sql_views"

OWNER = "dot_iu_owner"
RUNTIME = "dot_iu_runtime"
GATE_OPERATOR = "dot_iu_gate_operator"
AUDITOR = "dot_iu_auditor"
ROLES = (OWNER, RUNTIME, GATE_OPERATOR, AUDITOR)


def execute(sql: str) -> None:
    """Run one statement as raw SQL: the same bytes online and in --sql output."""
    ctx = op.get_context()
    if ctx.as_sql:
        ctx.impl.static_output(sql.strip() + ";")
    else:
        ctx.connection.exec_driver_sql(sql, execution_options={"no_parameters": True})


def option(name: str, default: object) -> object:
    """An -x option, validated by alembic/env.py; defaults when rendering checksums."""
    return op.get_context().opts.get("substrate", {}).get(name, default)


def allow_data_loss() -> str:
    """The -x allow_data_loss acknowledgement as a SQL boolean literal, for guards."""
    return "true" if option("allow_data_loss", False) else "false"


def literal(text: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def begin(expected_version: str | None, *, as_owner: bool = True) -> None:
    """Open the step: its lock_timeout, the revision guard, then act as the owner role."""
    execute(f"SET LOCAL lock_timeout = {literal(str(option('lock_timeout', '5s')))}")
    found = "(SELECT pg_catalog.string_agg(version_num, ',') FROM public.alembic_version)"
    want = "NULL" if expected_version is None else literal(expected_version)
    execute(
        "DO $guard$\nBEGIN\n"
        f"  IF {found} IS DISTINCT FROM {want} THEN\n"
        "    RAISE EXCEPTION 'substrate: this step expects the database at revision %, found %',\n"
        f"      coalesce({want}, '<base>'), coalesce({found}, '<base>')\n"
        "      USING ERRCODE = '55000';\n"
        "  END IF;\nEND\n$guard$"
    )
    if not as_owner:
        return
    execute(
        "DO $owner$\nBEGIN\n"
        f"  IF NOT pg_catalog.pg_has_role(session_user, {literal(OWNER)}, 'MEMBER') THEN\n"
        "    RAISE EXCEPTION 'substrate: the migrating login % may not act as %', session_user,\n"
        f"        {literal(OWNER)}\n"
        "      USING ERRCODE = '42501',\n"
        "            HINT = 'Migrate as a superuser, or as a login granted the owner role: "
        f"GRANT {OWNER} TO <login> (docs/roles.md).';\n"
        "  END IF;\nEND\n$owner$"
    )
    execute(f"SET LOCAL ROLE {OWNER}")


def _read(folder: Path, version_file: str) -> str:
    return (folder / version_file).read_text().rstrip().rstrip(";")


def function_file(version_file: str) -> None:
    """Run one immutable function-version file from sql_functions/ (CREATE OR REPLACE)."""
    execute(_read(FUNCTIONS_DIR, version_file))


def view_file(version_file: str) -> None:
    """Run one immutable view-version file from sql_views/ (CREATE [OR REPLACE] VIEW)."""
    execute(_read(VIEWS_DIR, version_file))


def comment(kind: str, name: str, text: str) -> None:
    execute(f"COMMENT ON {kind} {name} IS {literal(text)}")


def grant(privileges: str, kind: str, name: str, roles: tuple[str, ...]) -> None:
    if roles:
        execute(f"GRANT {privileges} ON {kind} {name} TO {', '.join(roles)}")


def revoke(privileges: str, kind: str, name: str, roles: tuple[str, ...]) -> None:
    if roles:
        execute(f"REVOKE {privileges} ON {kind} {name} FROM {', '.join(roles)}")


def new_function(version_file: str, signature: str, text: str,
                 execute_to: tuple[str, ...] = ()) -> None:
    """A new function: its file, no EXECUTE for PUBLIC, EXECUTE for the roles, its comment."""
    function_file(version_file)
    execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    grant("EXECUTE", "FUNCTION", signature, execute_to)
    comment("FUNCTION", signature, text)


def drop_function(signature: str, execute_to: tuple[str, ...] = ()) -> None:
    """new_function backwards: the grants, then the function."""
    revoke("EXECUTE", "FUNCTION", signature, execute_to)
    execute(f"DROP FUNCTION {signature}")


def new_table(ddl: str, name: str, text: str, select_to: tuple[str, ...] = ()) -> None:
    """A new table: its DDL, nothing for PUBLIC, SELECT for the roles, its comment."""
    execute(ddl)
    execute(f"REVOKE ALL ON TABLE {name} FROM PUBLIC")
    grant("SELECT", "TABLE", name, select_to)
    comment("TABLE", name, text)


def drop_table(name: str, select_to: tuple[str, ...] = ()) -> None:
    revoke("SELECT", "TABLE", name, select_to)
    execute(f"DROP TABLE {name}")


def new_view(version_file: str, name: str, text: str, select_to: tuple[str, ...] = ()) -> None:
    """A new view from sql_views/: nothing for PUBLIC, SELECT for the roles, its comment."""
    view_file(version_file)
    execute(f"REVOKE ALL ON TABLE {name} FROM PUBLIC")
    grant("SELECT", "TABLE", name, select_to)
    comment("VIEW", name, text)


def drop_view(name: str, select_to: tuple[str, ...] = ()) -> None:
    revoke("SELECT", "TABLE", name, select_to)
    execute(f"DROP VIEW {name}")
