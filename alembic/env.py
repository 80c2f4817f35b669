"""Alembic environment for the IU Core operator-runtime substrate.

Online and offline (``--sql``) runs share one discipline:

* one transaction per migration (``transaction_per_migration``);
* revisions read their options (``-x lock_timeout=5s``, ``-x allow_data_loss=true``) from the
  migration context, validated here, so a bad value is refused before anything runs;
* concurrent runs serialize on a session-level advisory lock (online: taken before Alembic reads
  the current revision; offline: the rendered script takes it first);
* every applied step is recorded in ``public.substrate_migration_history`` with the SHA-256 of
  the revision's SQL rendered with default options, by a statement that is itself part of the
  step's transaction (and of the rendered script), so online and offline record the same value.

The database URL comes from ``-x url=...``, then ``$DATABASE_URL``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sys
from logging.config import fileConfig

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool

from alembic import context

# One advisory-lock key for every substrate migration run: hashtext('substrate.alembic').
ADVISORY_LOCK_SQL = "SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('substrate.alembic'))"
ADVISORY_UNLOCK_SQL = (
    "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('substrate.alembic'))"
)
LOCK_TIMEOUT_RE = re.compile(r"^[0-9]{1,9}(us|ms|s|min|h)?$")
BOOLEAN_WORDS = {"true": True, "false": False}

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
x_args = context.get_x_argument(as_dictionary=True)


def substrate_options() -> dict[str, object]:
    """Validate the -x options the revisions understand; refuse anything else."""
    known = {"url", "lock_timeout", "allow_data_loss"}
    unknown = sorted(set(x_args) - known)
    if unknown:
        raise SystemExit(f"unknown -x option(s): {', '.join(unknown)}; known: {sorted(known)}")
    lock_timeout = x_args.get("lock_timeout", "5s")
    if not LOCK_TIMEOUT_RE.match(lock_timeout):
        raise SystemExit(f"-x lock_timeout={lock_timeout!r}: expected e.g. 5s, 500ms, 1min")
    allow = x_args.get("allow_data_loss", "false").lower()
    if allow not in BOOLEAN_WORDS:
        raise SystemExit(f"-x allow_data_loss={allow!r}: expected true or false")
    return {"lock_timeout": lock_timeout, "allow_data_loss": BOOLEAN_WORDS[allow]}


def database_url() -> str | None:
    url = x_args.get("url") or os.environ.get("DATABASE_URL")
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def render_step(module, direction: str) -> str:
    """Render one revision's upgrade or downgrade with default options, offline."""
    buffer = io.StringIO()
    quiet = logging.getLogger("alembic.runtime.migration")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the scratch context is not news to the operator
    try:
        scratch = MigrationContext.configure(
            dialect_name="postgresql",
            opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
        )
        with Operations.context(scratch):
            getattr(module, direction)()
    finally:
        quiet.setLevel(level)
    return buffer.getvalue()


def record_step(ctx, step, heads, run_args) -> None:
    """on_version_apply: record the step, in its own transaction, online or rendered."""
    revision = step.revision_map.get_revision(step.up_revision_id)
    direction = "upgrade" if step.is_upgrade else "downgrade"
    digest = hashlib.sha256(render_step(revision.module, direction).encode()).hexdigest()
    Operations(ctx)._install_proxy()  # the scratch render above removed the run's proxy
    mode = "offline" if ctx.as_sql else "online"
    statement = (
        "DO $substrate$\nBEGIN\n"
        "  IF pg_catalog.to_regclass('public.substrate_migration_history') IS NOT NULL THEN\n"
        "    INSERT INTO public.substrate_migration_history"
        " (revision, direction, sql_sha256, mode)\n"
        f"    VALUES ('{revision.revision}', '{direction}', '{digest}', '{mode}');\n"
        "  END IF;\nEND\n$substrate$"
    )
    if ctx.as_sql:
        ctx.impl.static_output(statement + ";")
    else:
        ctx.connection.exec_driver_sql(statement, execution_options={"no_parameters": True})


def run_offline() -> None:
    context.configure(
        url=database_url() or "postgresql+psycopg://",
        literal_binds=True,
        transaction_per_migration=True,
        on_version_apply=[record_step],
        substrate=substrate_options(),
    )
    context.get_context().impl.static_output(
        "-- Rendered by the substrate Alembic environment. Run with: psql -v ON_ERROR_STOP=1 -f\n"
        "-- Serialize with any concurrent migration run (held until this session ends).\n"
        + ADVISORY_LOCK_SQL
        + ";"
    )
    context.run_migrations()


def run_online() -> None:
    url = database_url()
    if not url:
        raise SystemExit(
            "no database: pass -x url=postgresql://... or set DATABASE_URL "
            "(`make db-up` prints the embedded server's URL)"
        )
    options = substrate_options()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Guards and pre-rollback snapshots speak through NOTICE: show them to the operator.
        connection.connection.driver_connection.add_notice_handler(
            lambda diag: print(f"{diag.severity}: {diag.message_primary}", file=sys.stderr)
        )
        connection.exec_driver_sql(ADVISORY_LOCK_SQL)
        connection.commit()
        try:
            context.configure(
                connection=connection,
                transaction_per_migration=True,
                on_version_apply=[record_step],
                substrate=options,
            )
            context.run_migrations()
        finally:
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql(ADVISORY_UNLOCK_SQL)
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
