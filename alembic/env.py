"""Alembic environment for the IU Core operator-runtime substrate.

Online and offline (``--sql``) runs share one discipline (docs/migrations.md):

* one transaction per migration (``transaction_per_migration``);
* revisions read their options (``-x lock_timeout=5s``, ``-x allow_data_loss=true``) from the
  migration context, validated here, so a bad value is refused before anything runs;
* concurrent runs serialize on a session-level advisory lock (online: taken before Alembic reads
  the current revision, polled so a waiting run holds no snapshot; offline: the rendered script
  takes it first, or stops at once with 55P03 while another run holds it);
* every applied step is recorded in ``public.substrate_migration_history`` with the SHA-256 of
  the revision's SQL rendered with default options, by a statement that is itself part of the
  step's transaction (and of the rendered script), so online and offline record the same value;
* a downgrade of more than one step is rehearsed first: every step runs once, in one
  transaction that is rolled back, so a guard that refuses anywhere in the range refuses before
  the first step changes anything. Between steps the rehearsal checks deferred constraints
  (``SET CONSTRAINTS ALL IMMEDIATE``), as each step's commit would. Online the rehearsal runs
  here; offline it is rendered at the top of the script (``BEGIN`` ... ``ROLLBACK``), so
  ``psql -v ON_ERROR_STOP=1`` stops there;
* a step that must work outside a transaction (``CREATE INDEX CONCURRENTLY`` on the ledger,
  revision_helpers_v2) ends its transaction, runs those statements one by one and opens a new
  one, in which it goes on and is recorded; in a caller's own transaction it runs the plain
  statements in that transaction instead;
* a database error, a refused guard, a bad URL or an unreachable server ends the run through
  Alembic's own error path: one ``FAILED: ...`` line naming the step, the SQLSTATE, the message
  and the hint, and a non-zero exit status; never a traceback.

The database: ``config.attributes["connection"]`` when a caller shares one (an Engine or a
Connection, the Alembic cookbook's way; pytest-alembic does this), else ``-x url=...``, then
``$DATABASE_URL``. A shared connection already inside a transaction is used as it is: every step
runs in the caller's transaction, which the caller commits or rolls back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import sys
import time
from logging.config import fileConfig

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.util import CommandError
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from alembic import context

# One advisory-lock key for every substrate migration run.
LOCK_KEY = "pg_catalog.hashtext('substrate.alembic')"
ADVISORY_TRY_LOCK_SQL = f"SELECT pg_catalog.pg_try_advisory_lock({LOCK_KEY})"
LOCK_POLL_SECONDS = 0.2
OFFLINE_LOCK_SQL = (
    "DO $lock$\nBEGIN\n"
    f"  IF NOT pg_catalog.pg_try_advisory_lock({LOCK_KEY}) THEN\n"
    "    RAISE EXCEPTION 'substrate: another migration run of this database is in progress'\n"
    "      USING ERRCODE = '55P03',\n"
    "            HINT = 'Run this script again when it has ended.';\n"
    "  END IF;\nEND\n$lock$;"
)
ADVISORY_UNLOCK_SQL = f"SELECT pg_catalog.pg_advisory_unlock({LOCK_KEY})"
LOCK_TIMEOUT_RE = re.compile(r"^[0-9]{1,9}(us|ms|s|min|h)?$")
BOOLEAN_WORDS = {"true": True, "false": False}
KNOWN_OPTIONS = ("url", "lock_timeout", "allow_data_loss")

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
x_args = context.get_x_argument(as_dictionary=True)


class MigrationFailed(CommandError):
    """A step failed or was refused. Alembic prints ``FAILED: <message>`` and exits non-zero;
    a programmatic caller finds the SQLSTATE here and the driver's error as ``__cause__``."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


def substrate_options() -> dict[str, object]:
    """Validate the -x options the revisions understand; refuse anything else."""
    unknown = sorted(set(x_args) - set(KNOWN_OPTIONS))
    if unknown:
        raise CommandError(
            f"unknown -x option(s): {', '.join(unknown)}; known: {', '.join(KNOWN_OPTIONS)}"
        )
    lock_timeout = x_args.get("lock_timeout", "5s")
    if not LOCK_TIMEOUT_RE.match(lock_timeout):
        raise CommandError(f"-x lock_timeout={lock_timeout!r}: expected e.g. 5s, 500ms, 1min")
    allow = x_args.get("allow_data_loss", "false").lower()
    if allow not in BOOLEAN_WORDS:
        raise CommandError(f"-x allow_data_loss={allow!r}: expected true or false")
    return {"lock_timeout": lock_timeout, "allow_data_loss": BOOLEAN_WORDS[allow]}


def database_url() -> str | None:
    url = x_args.get("url") or os.environ.get("DATABASE_URL")
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(error: BaseException) -> tuple[str | None, str]:
    """(SQLSTATE, "message. DETAIL: ... HINT: ...") of a database error, on one line."""
    original = getattr(error, "orig", None) or error
    sqlstate = getattr(original, "sqlstate", None)
    diag = getattr(original, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag else None
    text = one_line(primary or str(original).strip() or type(original).__name__)
    for label, part in (("DETAIL", "message_detail"), ("HINT", "message_hint")):
        value = getattr(diag, part, None) if diag else None
        if value:
            text += f" {label}: {one_line(value)}"
    return sqlstate, text


def database_error(error: BaseException) -> DBAPIError | None:
    """The database's own error behind ``error``: itself, or the first DBAPIError among the
    errors it was raised while handling (a statement fails, and cleaning up after it fails too
    on a connection the server has closed)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DBAPIError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


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


class Progress:
    """The steps of this run, and how many have completed (on_version_apply)."""

    def __init__(self) -> None:
        self.steps: list = []
        self.done = 0

    def plan(self) -> list:
        """The steps run_migrations is about to take (Alembic's own step function), for the
        commands that move the database (upgrade, downgrade, stamp); [] for the others."""
        ctx = context.get_context()
        self.steps, self.done = [], 0
        if ctx.opts.get("destination_rev") is None or ctx.opts.get("dont_mutate"):
            return self.steps
        self.steps = list(ctx._migrations_fn(ctx.get_current_heads(), ctx))
        if not ctx.as_sql and ctx.connection.in_transaction():
            ctx.connection.rollback()  # the version read above autobegan; nothing to keep
        return self.steps

    def applied(self, ctx, step, heads, run_args) -> None:
        self.done += 1

    def current(self) -> str:
        if self.done < len(self.steps):
            return self.steps[self.done].short_log
        return "after the last step"

    def is_multi_step_downgrade(self) -> bool:
        return len(self.steps) > 1 and all(
            isinstance(step, RevisionStep) and not step.is_upgrade for step in self.steps
        )

    def describe_range(self) -> str:
        first, last = self.steps[0], self.steps[-1]
        start = ",".join(first.from_revisions_no_deps)
        end = ",".join(last.to_revisions_no_deps) or "base"
        return f"{start} -> {end} ({len(self.steps)} steps)"


@contextlib.contextmanager
def quiet_migration_log():
    """Keep Alembic's 'Running downgrade ...' lines out of the rehearsal."""
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def as_if_committed(ctx, step, heads, run_args) -> None:
    """on_version_apply when several steps share one transaction (a rehearsal, or a caller's
    own transaction): check the deferred constraints as the step's own commit would (a seed
    step's deferred foreign key, say), before the next step alters the table."""
    statement = "SET CONSTRAINTS ALL IMMEDIATE"
    if ctx.as_sql:
        ctx.impl.static_output(statement + ";")
    else:
        ctx.connection.exec_driver_sql(statement)


def configure(progress: Progress, shared_transaction: bool = False, **kwargs) -> None:
    callbacks = [record_step, progress.applied] + ([as_if_committed] if shared_transaction
                                                   else [])
    # shared_transaction tells the revision helpers that a step may not end its transaction
    # (revision_helpers_v2: an index is then built with a plain CREATE INDEX, in it).
    options = {**substrate_options(), "shared_transaction": shared_transaction}
    context.configure(on_version_apply=callbacks, substrate=options, **kwargs)


# ---------------------------------------------------------------------------
# Offline: the script a DBA reviews and runs with psql -v ON_ERROR_STOP=1 -f
# ---------------------------------------------------------------------------


def run_offline() -> None:
    progress = Progress()
    url = database_url() or "postgresql+psycopg://"
    try:  # only the dialect is used, but a malformed URL is still refused
        make_url(url).get_dialect()
    except (ArgumentError, ValueError) as error:
        raise CommandError(f"bad database URL: {one_line(error)}") from None
    base = {"url": url, "literal_binds": True}
    configure(progress, transaction_per_migration=True, **base)
    output = context.get_context().impl.static_output
    output(
        "-- Rendered by the substrate Alembic environment. Run with: psql -v ON_ERROR_STOP=1 -f\n"
        "-- Serialize with any concurrent migration run (held until this session ends): stop\n"
        "-- at once if one holds it, rather than wait for it holding a snapshot, which a\n"
        "-- concurrent index build of that run would wait for in turn.\n"
        + OFFLINE_LOCK_SQL
    )
    if progress.plan() and progress.is_multi_step_downgrade():
        output(
            f"-- Rehearsal of the downgrade {progress.describe_range()}: every step runs once in\n"
            "-- ONE transaction that is rolled back, so a guard that refuses anywhere in the\n"
            "-- range stops this script (ON_ERROR_STOP) before any step has changed anything.\n"
            "BEGIN;"
        )
        configure(progress, shared_transaction=True, transaction_per_migration=False, **base)
        with quiet_migration_log():
            context.run_migrations()
        output(
            "ROLLBACK;\n"
            "-- End of the rehearsal. The downgrade itself, one transaction per step:"
        )
        configure(progress, transaction_per_migration=True, **base)
    context.run_migrations()


# ---------------------------------------------------------------------------
# Online
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def connection_to_use():
    """(connection, external): the caller's shared connection, else one from the URL."""
    shared = config.attributes.get("connection")
    if isinstance(shared, Connection):
        yield shared, shared.in_transaction()
        return
    if shared is not None:  # an Engine, or anything with an Engine's connect()
        with shared.connect() as connection:
            yield connection, connection.in_transaction()
        return
    url = database_url()
    if not url:
        raise CommandError(
            "no database: pass -x url=postgresql://... or set DATABASE_URL "
            "(`make db-up` prints the embedded server's URL)"
        )
    given = x_args.get("url") or os.environ.get("DATABASE_URL")
    try:
        engine = create_engine(url, poolclass=pool.NullPool)
    except (ArgumentError, ValueError) as error:
        raise CommandError(f"bad database URL: {one_line(error)}") from None
    try:
        try:
            connection = engine.connect()
        except SQLAlchemyError as error:
            sqlstate, text = describe(error)
            where = f"SQLSTATE {sqlstate}" if sqlstate else "the server was not reached"
            shown = make_url(given).render_as_string(hide_password=True)
            raise MigrationFailed(
                f"cannot connect to {shown} ({where}): {text}", sqlstate) from None
        with connection:
            yield connection, False
    finally:
        engine.dispose()


def show_notices(connection) -> None:
    """Guards and pre-rollback counts speak through NOTICE: show them to the operator."""
    driver = connection.connection.driver_connection
    driver.add_notice_handler(
        lambda diag: None if getattr(driver, "_substrate_quiet", False)
        else print(f"{diag.severity}: {diag.message_primary}", file=sys.stderr)
    )


def rehearse(connection, progress: Progress) -> None:
    """Run the whole downgrade in one transaction and roll it back; refuse on any error."""
    driver = connection.connection.driver_connection
    driver._substrate_quiet = True
    try:
        with quiet_migration_log():
            transaction = connection.begin()
            try:
                configure(progress, shared_transaction=True, connection=connection,
                          transaction_per_migration=False)
                context.run_migrations()
            except DBAPIError as error:
                sqlstate, text = describe(error)
                raise MigrationFailed(
                    f"downgrade {progress.describe_range()} refused before any step ran: the "
                    f"rehearsal stopped at {progress.current()}: SQLSTATE {sqlstate}: {text}",
                    sqlstate,
                ) from error
            finally:
                transaction.rollback()
    finally:
        driver._substrate_quiet = False
    print(
        f"rehearsed the downgrade {progress.describe_range()} in one transaction, rolled back: "
        "no step refuses",
        file=sys.stderr,
    )


def take_migration_lock(connection) -> None:
    """The session-level advisory lock every run takes first, polled rather than waited for:
    a session blocked in pg_advisory_lock holds a snapshot while it waits, and CREATE INDEX
    CONCURRENTLY (revision_helpers_v2) waits for every transaction of the database older than
    its own, so a second run waiting that way for the first, which holds the lock while it
    builds, would deadlock with it. Between two tries this session holds no transaction."""
    said = False
    while True:
        got = connection.exec_driver_sql(ADVISORY_TRY_LOCK_SQL).scalar()
        connection.commit()
        if got:
            return
        if not said:
            print("waiting for another migration run of this database to end "
                  "(the advisory lock hashtext('substrate.alembic'))", file=sys.stderr)
            said = True
        time.sleep(LOCK_POLL_SECONDS)


def run_online() -> None:
    progress = Progress()
    with connection_to_use() as (connection, external):
        show_notices(connection)
        if not external:
            take_migration_lock(connection)
        try:
            configure(progress, shared_transaction=external, connection=connection,
                      transaction_per_migration=True)
            if not external and progress.plan() and progress.is_multi_step_downgrade():
                rehearse(connection, progress)
                configure(progress, connection=connection, transaction_per_migration=True)
                progress.plan()
            try:
                context.run_migrations()
            except SQLAlchemyError as error:
                cause = database_error(error)
                if cause is None:  # e.g. the connection was lost and then used again
                    raise MigrationFailed(f"{progress.current()}: {one_line(error)}") from error
                sqlstate, text = describe(cause)
                raise MigrationFailed(
                    f"{progress.current()}: SQLSTATE {sqlstate}: {text}", sqlstate
                ) from cause
        finally:
            if not external:
                try:
                    if connection.in_transaction():
                        connection.rollback()
                    connection.exec_driver_sql(ADVISORY_UNLOCK_SQL)
                    connection.commit()
                except SQLAlchemyError:
                    pass  # the connection is gone, and the server released its lock with it


if context.is_offline_mode():
    run_offline()
else:
    run_online()
