"""Executors: how the runtime's transactions reach PostgreSQL (docs/runtime.md, "Executors").

An executor runs a list of statements in ONE transaction and commits it::

    rows = executor.run([Statement(sql, params), ...], read_only=False)

Statements are SELECTs with ``%s`` placeholders; a parameter is a str (the text PostgreSQL
casts to the type the statement names), None (NULL) or ``RowCount(i)`` (how many rows statement
``i`` of the same transaction returned). Every statement's rows come back as JSON objects,
``to_jsonb`` of the row computed by the server, so every executor returns the same values.

On a database error the executor rolls back and raises ``DatabaseError`` (SQLSTATE, first
line of the message, which statement). Without a database it raises ``ExecutorUnavailable``
(nothing was committed), and when the connection is lost while COMMIT is in flight,
``OutcomeUnknown``.

``psycopg_executor`` (the default) keeps one psycopg connection; ``psql_executor``
(``substrate.runtime.psql``) runs the ``psql`` client, locally or through a remote shell.
Nothing connects before the first ``run``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from substrate.runtime.errors import DatabaseError, ExecutorUnavailable, OutcomeUnknown

DEFAULT_STATEMENT_TIMEOUT = "5min"
DEFAULT_LOCK_TIMEOUT = "30s"
DEFAULT_CONNECT_TIMEOUT = 10
APPLICATION_NAME = "substrate run"
# Each statement's rows as the server renders them in JSON: identical for every executor.
ROWS_AS_JSON = "SELECT pg_catalog.to_jsonb(r) FROM ({sql}) AS r"
# Python's int() refuses a decimal string of 4,300 digits or more (ValueError).
INT_DIGITS_LIMIT = 4300


def _int_or_digits(text: str) -> int | str:
    """A JSON integer as an int; one too long for int() comes back as its digit string."""
    return int(text) if len(text.lstrip("-")) < INT_DIGITS_LIMIT else text


def load_json(text: str | bytes) -> object:
    """A row's JSON as both executors read it: numbers with a fraction as floats, integers as
    ints, an integer of 4,300 digits or more (a numeric result can be one) as its digits."""
    return json.loads(text, parse_int=_int_or_digits)


@dataclass(frozen=True)
class RowCount:
    """A parameter: the number of rows statement ``step`` of this transaction returned."""

    step: int


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple = ()


class Executor(Protocol):
    def run(self, statements: Sequence[Statement], *,
            read_only: bool = False) -> list[list[dict]]: ...

    def close(self) -> None: ...


def check_statement(statement: Statement, done: int) -> None:
    """A statement an executor accepts: placeholders match the parameters, no other ``%``,
    and a RowCount names a statement that already ran."""
    if statement.sql.count("%") != statement.sql.count("%s") or (
            statement.sql.count("%s") != len(statement.params)):
        raise ValueError(f"statement placeholders do not match its parameters: {statement.sql}")
    for param in statement.params:
        if isinstance(param, RowCount) and not 0 <= param.step < done:
            raise ValueError(f"RowCount({param.step}) names no earlier statement")
        if not (param is None or isinstance(param, (str, RowCount))):
            raise TypeError(f"parameters are bound as text; got {type(param).__name__}")


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


class PsycopgExecutor:
    """One psycopg connection (autocommit; each ``run`` is BEGIN ... COMMIT), opened on first
    use from ``conninfo`` and again after it was lost; or a connection the caller made."""

    def __init__(self, conninfo: str | None = None, *, connection=None,
                 connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
                 statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT,
                 lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
                 application_name: str = APPLICATION_NAME):
        if (conninfo is None) == (connection is None):
            raise ValueError("give a conninfo or a connection")
        self.conninfo = conninfo
        self.connect_timeout = connect_timeout
        self.settings = {"statement_timeout": statement_timeout, "lock_timeout": lock_timeout}
        self.application_name = application_name
        self._conn = connection
        self._configured = False

    def _connection(self):
        import psycopg

        if self._conn is not None and not self._conn.closed:
            if not self._configured:
                self._configure()
            return self._conn
        if self.conninfo is None:
            raise ExecutorUnavailable("the database connection is closed")
        try:
            self._conn = psycopg.connect(self.conninfo, autocommit=True,
                                         connect_timeout=self.connect_timeout,
                                         application_name=self.application_name)
        except psycopg.Error as error:
            code = f" (SQLSTATE {error.sqlstate})" if error.sqlstate else ""
            raise ExecutorUnavailable(f"cannot connect{code}: {first_line(str(error))}") from None
        self._configured = False
        self._configure()
        return self._conn

    def _configure(self) -> None:
        import psycopg

        self._conn.autocommit = True
        from psycopg.types.json import set_json_loads

        set_json_loads(load_json, self._conn)
        try:
            for name, value in self.settings.items():
                self._conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
        except psycopg.Error as error:
            raise ExecutorUnavailable(f"cannot configure the session: "
                                      f"{first_line(str(error))}") from None
        self._configured = True

    def run(self, statements: Sequence[Statement], *,
            read_only: bool = False) -> list[list[dict]]:
        """One transaction, pipelined: BEGIN, the statements and COMMIT go to the server in one
        batch and their results come back together (one round trip instead of one per
        statement), except that a statement naming an earlier one's row count waits for that
        count. The server runs them in order and stops at the first error, as one by one."""
        import psycopg

        for index, statement in enumerate(statements):
            check_statement(statement, index)
        conn = self._connection()
        results: list[list[dict] | None] = [None] * len(statements)
        sent: list[tuple[int, object]] = []
        committing = False
        try:
            with conn.pipeline() as pipeline:
                try:
                    conn.execute("BEGIN READ ONLY" if read_only else "BEGIN")
                    for index, statement in enumerate(statements):
                        if any(isinstance(p, RowCount) and results[p.step] is None
                               for p in statement.params):
                            pipeline.sync()
                            _collect(sent, results)
                        params = [str(len(results[p.step])) if isinstance(p, RowCount) else p
                                  for p in statement.params]
                        sent.append((index, conn.execute(
                            ROWS_AS_JSON.format(sql=statement.sql), params)))
                    committing = True  # from here a lost connection may have committed
                    conn.execute("COMMIT")
                    pipeline.sync()
                except psycopg.Error:
                    _drain(pipeline)
                    raise
            _collect(sent, results)
        except psycopg.Error as error:
            if conn.closed or conn.broken:
                lost = first_line(str(error)) or type(error).__name__
                # COMMIT went out in the batch that was lost: it may have landed.
                if committing and not read_only:
                    raise OutcomeUnknown(f"the connection was lost during COMMIT: {lost}") from None
                raise ExecutorUnavailable(f"the connection was lost: {lost}") from None
            step = _failed_step(sent, results)
            _rollback(conn)
            message = first_line(error.diag.message_primary if error.diag else None)
            raise DatabaseError(error.sqlstate, message or first_line(str(error)),
                                step) from None
        except BaseException:
            _rollback(conn)
            raise
        return results

    def close(self) -> None:
        """Close the connection (a connection the caller gave included)."""
        if self._conn is not None:
            self._conn.close()


def _drain(pipeline) -> None:
    """After an error, one more sync takes the results the server skipped, so the pipeline
    ends clean (psycopg would log a warning on its way out otherwise)."""
    import psycopg

    try:
        pipeline.sync()
    except psycopg.Error:
        pass


def _collect(sent: list, results: list) -> None:
    """Read the rows of the statements sent so far (their results have arrived)."""
    for index, cursor in sent:
        results[index] = [row[0] for row in cursor.fetchall()]
    sent.clear()


def _failed_step(sent: list, results: list) -> int | None:
    """After an error: the first statement sent without a result is the one that failed (the
    server skips the rest); None when every statement answered (the error came with COMMIT)."""
    import psycopg

    for index, cursor in sent:
        try:
            results[index] = [row[0] for row in cursor.fetchall()]
        except psycopg.Error:
            return index
    return None


def _rollback(conn) -> None:
    """End a transaction left open by an error (no-op when the server already ended it).

    Through ``conn.rollback()``, never ``execute("ROLLBACK")``: rollback() also drops
    psycopg's cache of prepared statements on both sides. psycopg prepares a statement it has
    run five times, and a pipeline cut short by an error can leave that cache naming a
    statement the server does not have (26000 on a later transaction); an executed ROLLBACK
    resets the cache only the first time its text is seen."""
    import psycopg

    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.rollback()
    except psycopg.Error:
        pass


def psycopg_executor(conninfo, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
                     statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT,
                     lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
                     application_name: str = APPLICATION_NAME) -> PsycopgExecutor:
    """The default executor: a libpq conninfo or URL (connected on first use, reconnected
    after a loss), or an open psycopg connection (set to autocommit and used as is)."""
    options = dict(statement_timeout=statement_timeout, lock_timeout=lock_timeout,
                   connect_timeout=connect_timeout, application_name=application_name)
    if isinstance(conninfo, str):
        return PsycopgExecutor(conninfo, **options)
    return PsycopgExecutor(connection=conninfo, **options)
