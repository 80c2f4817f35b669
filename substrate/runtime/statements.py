"""Governed SQL: the one statement a catalogued command may run, and every statement the
runtime itself sends (docs/runtime.md, "Governed SQL only").

A command's statement is built from its catalog row alone: ``SELECT <schema>.<function>(%s::<type>,
...)``, one placeholder per catalogued argument, each cast to the catalogued type; the values
are bound by the executor, never interpolated. ``_assert_governed`` re-checks a statement
against its catalog row right before an apply runs it: anything but exactly that text (DML,
DDL, a second statement, a comment, another function, other casts) is refused as unsafe.

The runtime's own statements are constants here, all schema-qualified, all bound the same way.
"""

from __future__ import annotations

import re

from substrate.runtime.catalog import parse_target
from substrate.runtime.errors import CatalogError, UnsafeStatement
from substrate.runtime.executors import RowCount, Statement
from substrate.runtime.params import is_supported

DML = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "TRUNCATE", "CALL", "DO",
                 "LOCK", "SET", "RESET", "WITH", "VALUES", "TABLE"})
DDL = frozenset({"CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "COMMENT", "SECURITY", "REINDEX",
                 "CLUSTER", "VACUUM", "ANALYZE", "REFRESH", "IMPORT", "REASSIGN"})

# The runtime's own statements (their placeholders are bound like a command's).
LOG = ("SELECT public.fn_dot_iu_command_log(%s::text, %s::text, %s::text, %s::text, %s::text,"
       " %s::jsonb)")
LOG_WITH_ROWS = ("SELECT public.fn_dot_iu_command_log(%s::text, %s::text, %s::text, %s::text,"
                 " %s::text, %s::jsonb || pg_catalog.jsonb_build_object('result_rows',"
                 " %s::integer))")
# A plan-bound apply's first statement (0019): the logger's plan checks, before any command SQL.
PLAN_CHECK = ("SELECT public.fn_dot_iu_command_plan_check(%s::bigint, %s::text, %s::text)"
              " AS correlation_id")
APPLY_BEGIN = ("SELECT public.fn_dot_iu_runtime_apply_begin(%s::text, %s::text, %s::text,"
               " %s::bigint, %s::text)")
# apply_begin with the lease taken (or renewed, for its live holder) by the same statement,
# in the apply's own transaction: the epoch apply_begin checks is the one acquire returns
# (NULL while another holder has the lease: apply_begin then refuses with 55000).
APPLY_BEGIN_TAKING = ("SELECT public.fn_dot_iu_runtime_apply_begin(%s::text, %s::text, %s::text,"
                      " public.fn_dot_iu_runtime_lease_acquire(%s::text, %s::text, %s::integer),"
                      " %s::text)")
# The epoch this transaction holds, for the applied row's evidence and the release: the lease
# row as the view shows it (the runtime took it in this transaction, so it is its own).
HELD_EPOCH = ("(SELECT l.epoch FROM public.v_dot_iu_runtime_lease AS l"
              " WHERE l.lease_name = %s::text AND l.holder = %s::text)")
LOG_WITH_ROWS_AND_EPOCH = (
    "SELECT public.fn_dot_iu_command_log(%s::text, %s::text, %s::text, %s::text, %s::text,"
    " %s::jsonb || pg_catalog.jsonb_build_object('result_rows', %s::integer, 'epoch', "
    + HELD_EPOCH + "))")
LEASE_RELEASE_HELD = ("SELECT public.fn_dot_iu_runtime_lease_release(%s::text, %s::text, "
                      + HELD_EPOCH + ")")
VERIFY_VALIDATE = "SELECT public.fn_iu_collection_validate(%s::uuid)"
VERIFY_HEALTH = "SELECT public.fn_iu_collection_healthcheck()"


def governed_statement(catalog_row) -> str:
    """The governed statement of a catalog row (a CatalogRow or a mapping with
    ``target_function``)."""
    schema, function, types = parse_target(_target(catalog_row))
    unsupported = [pg_type for pg_type in types if not is_supported(pg_type)]
    if unsupported:
        raise CatalogError(f"target {_target(catalog_row)}: the runtime cannot bind type(s) "
                           f"{', '.join(unsupported)}")
    return f"SELECT {schema}.{function}({', '.join(f'%s::{t}' for t in types)})"


def _assert_governed(statement: object, catalog_row) -> None:
    """Refuse (UnsafeStatement) anything but exactly the governed call of ``catalog_row``."""
    try:
        expected = governed_statement(catalog_row)
    except CatalogError as error:
        raise UnsafeStatement(f"no governed statement for this catalog row: {error}",
                              "catalog") from None
    if statement == expected:
        return
    kind, why = _why(statement)
    raise UnsafeStatement(f"refused as unsafe ({why}): only {expected!r} may run for "
                          f"{_name(catalog_row)}", kind)


def _why(statement: object) -> tuple[str, str]:
    if not isinstance(statement, str):
        return "not_sql", "not a SQL string"
    words = re.findall(r"[A-Za-z_]+", statement)
    first = words[0].upper() if words else ""
    if ";" in statement.rstrip().rstrip(";"):
        return "several_statements", "more than one statement"
    if "--" in statement or "/*" in statement:
        return "comment", "a comment"
    if first in DML:
        return "dml", f"{first} is not a governed call"
    if first in DDL:
        return "ddl", f"{first} is not a governed call"
    return "other_call", "not the catalogued call of this command"


def _target(catalog_row) -> str:
    if isinstance(catalog_row, dict):
        return catalog_row.get("target_function") or ""
    return getattr(catalog_row, "target_function", "") or ""


def _name(catalog_row) -> str:
    if isinstance(catalog_row, dict):
        return str(catalog_row.get("command_name"))
    return str(getattr(catalog_row, "command_name", "?"))


def log(command, mode, status, actor, digest, evidence_json) -> Statement:
    return Statement(LOG, (command, mode, status, actor, digest, evidence_json))


def log_applied(command, actor, digest, evidence_json, rows_of_step: int,
                returns_set: bool = True, taken: tuple[str, str] | None = None) -> Statement:
    """The applied row, with the row count of statement ``rows_of_step`` of the same
    transaction added to its evidence as ``result_rows``. A target that returns no set
    answers ``SELECT target(...)`` with exactly one row, so its count is written as 1 and the
    executor need not wait for the statement's rows before it sends this one. ``taken``
    (lease, holder): the lease was taken in this transaction, and its epoch is added to the
    evidence from the lease row."""
    rows = RowCount(rows_of_step) if returns_set else "1"
    params = (command, "apply", "applied", actor, digest, evidence_json, rows)
    if taken is not None:
        return Statement(LOG_WITH_ROWS_AND_EPOCH, (*params, *taken))
    return Statement(LOG_WITH_ROWS, params)
