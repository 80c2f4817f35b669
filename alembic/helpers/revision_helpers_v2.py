"""Revision helpers, version 2: version 1's, and an index built without stopping the writers.

Revisions written after ``0020_plan_chain_correlation`` import this module; everything version 1
offers is here under the same names (version 1 stays as it was released, locked with the
revisions that import it). What version 2 adds (docs/migrations.md, "An index on a big table"):

* ``concurrent_indexes`` builds indexes with ``CREATE INDEX CONCURRENTLY``, so the ledger's
  writers never wait for the build: a plain ``CREATE INDEX`` holds SHARE on the table, which
  stops every INSERT for as long as the build reads the table (seconds on a ledger of millions
  of rows). The statement cannot run inside a transaction block, so the helper ends the step's
  transaction (Alembic's ``autocommit_block``: ``COMMIT`` ... ``BEGIN`` in ``--sql`` output),
  runs its statements one by one, each committing on its own, and opens a new transaction, in
  which the step goes on and Alembic records it. Outside the transaction the step's
  ``SET LOCAL`` settings are gone, so the block sets ``lock_timeout``, ``statement_timeout =
  0`` (a build must not be cut short by a timeout set for the login or the database),
  ``client_min_messages`` and the owner role for the session and resets them at its end,
  failed or not; the step's second transaction then opens as its first did (``SET LOCAL``
  lock timeout and owner role).
* A build that fails (a lock timeout while it waits for the transactions writing the table, a
  cancel, a lost connection) leaves an INVALID index behind and the database at the previous
  revision. The build therefore starts by dropping any index of that name
  (``DROP INDEX CONCURRENTLY IF EXISTS``): running the upgrade again is the repair, and it
  rebuilds what a step that crashed after its build and before its commit had left valid.
* Where the step must stay inside a transaction (a caller who shares a connection already in a
  transaction, so that it may commit or roll back every step), the helper runs the plain
  ``CREATE INDEX``, in that transaction, as the owner role the step already acts as: same
  result, but the table's writers wait until that transaction ends. ``alembic/env.py`` says
  which case a step runs in (the ``shared_transaction`` option).
* The way back needs nothing new: a downgrade drops the index with a plain ``DROP INDEX`` in its
  step's transaction (strict, no ``IF EXISTS``), which holds the table for the moment the
  catalog change takes, as every step that alters the ledger does.
"""

from __future__ import annotations

import re

from revision_helpers_v1 import (
    AUDITOR,
    FUNCTIONS_DIR,
    GATE_OPERATOR,
    OWNER,
    PROJECT_ROOT,
    ROLES,
    RUNTIME,
    VIEWS_DIR,
    allow_data_loss,
    begin,
    comment,
    drop_function,
    drop_table,
    drop_view,
    execute,
    function_file,
    grant,
    literal,
    new_function,
    new_table,
    new_view,
    option,
    revoke,
    view_file,
)

from alembic import op

__all__ = [
    "AUDITOR", "FUNCTIONS_DIR", "GATE_OPERATOR", "OWNER", "PROJECT_ROOT", "ROLES", "RUNTIME",
    "VIEWS_DIR", "allow_data_loss", "begin", "comment", "concurrent_indexes", "drop_function",
    "drop_table", "drop_view", "execute", "function_file", "grant", "literal", "new_function",
    "new_table", "new_view", "option", "revoke", "view_file",
]

# An index of the package: public.<lower-case name>; the helpers interpolate it into DDL.
INDEX_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _index(name: str) -> str:
    if not INDEX_NAME.match(name):
        raise ValueError(f"index name {name!r}: lower-case letters, digits and _ only")
    return f"public.{name}"


def _outside_transaction(statements: list[str], in_transaction: list[str]) -> None:
    """Run ``statements`` outside any transaction (each commits on its own), between the end of
    the step's transaction and a new one; or ``in_transaction`` inside the shared one."""
    if option("shared_transaction", False):
        for statement in in_transaction:
            execute(statement)
        return
    timeout = literal(str(option("lock_timeout", "5s")))
    settings = ("ROLE", "client_min_messages", "statement_timeout", "lock_timeout")
    ctx = op.get_context()
    if ctx.as_sql:  # what the DBA reading the script meets first: why a step commits midway
        ctx.impl.static_output(
            "-- The statements up to the next BEGIN run outside any transaction (CREATE INDEX\n"
            "-- CONCURRENTLY cannot run inside one): docs/migrations.md, An index on a big table.")
    with ctx.autocommit_block():
        execute(f"SET lock_timeout = {timeout}")
        # A build takes as long as the table is big and never blocks its writers; a
        # statement_timeout set for the login or the database would only stop it part-way.
        execute("SET statement_timeout = 0")
        execute("SET client_min_messages = warning")  # not "does not exist, skipping"
        execute(f"SET ROLE {OWNER}")
        try:
            for statement in statements:
                execute(statement)
        except Exception:
            # Online only (rendering raises nothing): give the session back as it was, so a
            # caller's pooled connection does not go on as the owner role; the failure that
            # got here is what the run reports, whatever becomes of these.
            for setting in settings:
                try:
                    execute(f"RESET {setting}")
                except Exception:  # noqa: BLE001 - a lost connection: nothing left to reset
                    break
            raise
        for setting in settings:
            execute(f"RESET {setting}")
    # The step's second transaction opens as its first did (begin): the same lock timeout,
    # acting as the owner role, for the rest of the step and its alembic_version update.
    execute(f"SET LOCAL lock_timeout = {timeout}")
    execute(f"SET LOCAL ROLE {OWNER}")


def concurrent_indexes(table: str, indexes: list[tuple[str, str, str]]) -> None:
    """Indexes on ``table``, each ``(name, definition, comment)`` with ``definition`` what
    follows the table name (``(col) WHERE col IS NOT NULL``), built one after the other in one
    block outside the step's transaction, without stopping the table's writers, each with its
    comment. An index is its table owner's, as every index is; no grant applies."""
    statements, in_transaction = [], []
    for name, definition, text in indexes:
        index = _index(name)
        described = f"COMMENT ON INDEX {index} IS {literal(text)}"
        statements += [
            # A build an earlier run left INVALID (or one a crash kept from being recorded).
            f"DROP INDEX CONCURRENTLY IF EXISTS {index}",
            f"CREATE INDEX CONCURRENTLY {name} ON {table} {definition}",
            described,
        ]
        in_transaction += [f"CREATE INDEX {name} ON {table} {definition}", described]
    _outside_transaction(statements, in_transaction)
