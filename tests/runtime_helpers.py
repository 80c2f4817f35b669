"""Shared helpers for the operator-runtime tests (SPEC 3.8): a real login in dot_iu_runtime,
IU Core stand-ins that answer, gates, and what the ledger recorded.

The runtime always runs as a LOGIN role that is a member of ``dot_iu_runtime`` (never as the
superuser), so every test also proves the runtime needs no more than that role's grants.
Gates are opened and closed through the protocol, as the superuser test connection.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from dataclasses import dataclass

import psycopg
from conftest import PROJECT_ROOT
from psycopg import sql

from substrate.runtime import OperatorRuntime, psql_executor, psycopg_executor

STANDINS = PROJECT_ROOT / "tests" / "fixtures" / "iu_core_standins.sql"
RUNTIME_GATE = "iu_core.operator_runtime_enabled"
COMPOSER_GATE = "iu_core.composer_enabled"
_logins = itertools.count(1)

# Calls of the answering stand-ins, by function name only (never an argument value).
CALLS_TABLE = """
CREATE TABLE public.rt_test_standin_call (
    call_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fn text NOT NULL
);
COMMENT ON TABLE public.rt_test_standin_call IS 'TEST ONLY: calls of the answering stand-ins.';
"""
# An answering stand-in: records its call (unless the transaction is read only, as verify's
# is) and returns its function name and arguments as jsonb.
ECHO = """
CREATE OR REPLACE FUNCTION public.{name}({args})
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  IF pg_catalog.current_setting('transaction_read_only') = 'off' THEN
    INSERT INTO public.rt_test_standin_call (fn) VALUES ('{name}');
  END IF;
  RETURN pg_catalog.jsonb_build_object('fn', '{name}',
                                       'args', pg_catalog.jsonb_build_array({names}));
END
$standin$;
"""
_SIGNATURE = re.compile(r"^CREATE FUNCTION public\.(\w+)\(([^)]*)\)$", re.M)


@dataclass
class Login:
    """A LOGIN role that is a member of dot_iu_runtime."""

    name: str
    password: str


def create_login(pg) -> Login:
    login = Login(f"rt_{os.getpid()}_{next(_logins)}", secrets.token_hex(12))
    with pg.connect("postgres") as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE dot_iu_runtime").format(
            sql.Identifier(login.name), sql.Literal(login.password)))
    return login


def drop_login(pg, login: Login) -> None:
    with pg.connect("postgres") as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login.name)))


def login_conninfo(pg, login: Login, db_name: str) -> str:
    return (f"host={pg.host} port={pg.port} user={login.name} password={login.password} "
            f"dbname={db_name}")


def login_url(pg, login: Login, db_name: str) -> str:
    return f"postgresql://{login.name}:{login.password}@{pg.host}:{pg.port}/{db_name}"


def executor(pg, login: Login, db_name: str, kind: str = "psycopg", **options):
    if kind == "psql":
        return psql_executor(pg.host, pg.port, login.name, db_name, psql=pg.tool("psql"),
                             password=login.password, **options)
    return psycopg_executor(login_conninfo(pg, login, db_name), **options)


def runtime(pg, login: Login, db_name: str, kind: str = "psycopg", executor_options=None,
            **options) -> OperatorRuntime:
    return OperatorRuntime(executor(pg, login, db_name, kind, **(executor_options or {})),
                           **options)


def install_standins(conn) -> None:
    """The refusing stand-ins of tests/fixtures (every call raises 0A000)."""
    conn.execute(STANDINS.read_text())


def install_answering_standins(conn) -> None:
    """Every stand-in replaced by one that answers (same signatures, so the catalog resolves
    exactly as with the refusing ones) and records its call by name."""
    install_standins(conn)
    conn.execute(CALLS_TABLE)
    for name, args in _SIGNATURE.findall(STANDINS.read_text()):
        names = ", ".join(arg.split()[0] for arg in args.split(",") if arg.strip())
        conn.execute(ECHO.format(name=name, args=args, names=names))


def calls(conn) -> list[str]:
    return [row[0] for row in conn.execute(
        "SELECT fn FROM public.rt_test_standin_call ORDER BY call_id")]


def project_required_gates(conn) -> None:
    """What the generated seed revision 0014 does: the registry's GATE_BY_FUNCTION projected
    into dot_iu_command_catalog.required_gates. A no-op once 0014 has set the same gates."""
    from seeds.registry import GATE_BY_FUNCTION

    for function, gate in GATE_BY_FUNCTION.items():
        conn.execute(
            "UPDATE public.dot_iu_command_catalog SET required_gates = ARRAY[%s]::text[]"
            " WHERE split_part(target_function, '(', 1) = %s"
            " AND required_gates IS DISTINCT FROM ARRAY[%s]::text[]",
            (gate, function, gate))


def gate_open(conn, gate: str = RUNTIME_GATE, ttl: int = 600) -> None:
    conn.execute("SELECT public.fn_iu_gate_open(%s, 'CHG-4711', 'ops@test', 'runtime tests',"
                 " %s::integer)", (gate, ttl))


def gate_close(conn, gate: str = RUNTIME_GATE) -> None:
    conn.execute("SELECT public.fn_iu_gate_close(%s, 'ops@test', 'runtime tests done')",
                 (gate,))


def runs(conn, command: str | None = None) -> list[dict]:
    """Every run-ledger row except the gate protocol's own, as dicts, in order."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT run_id, command_name, run_mode, run_status, actor, params_digest, evidence,"
            " correlation_id::text AS correlation_id, plan_run_id, session_login"
            " FROM public.dot_iu_command_run"
            " WHERE command_name NOT LIKE 'dot\\_iu\\_gate\\_%%'"
            " AND (%s::text IS NULL OR command_name = %s) ORDER BY run_id",
            (command, command)).fetchall()


def registry(conn, command: str) -> tuple:
    return conn.execute(
        "SELECT total_runs, applied_runs, refused_runs, failed_runs, last_status"
        " FROM public.v_dot_iu_command_registry WHERE command_name = %s", (command,)).fetchone()


def prepare_db(db) -> None:
    """A fresh clone made ready for the runtime: the answering stand-ins, the catalog's
    required gates, and the runtime gate open. (Each test module wraps this and
    create_login/drop_login in its own fixtures.)"""
    install_answering_standins(db)
    project_required_gates(db)
    gate_open(db)
