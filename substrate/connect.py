"""How every sub-command finds and reaches its database: one URL resolver, one connector.

``resolve_url(arg)`` takes ``--url``, else ``$DATABASE_URL``. ``connect(url)`` returns a psycopg
connection or raises ``CannotConnect`` with a one-line message: no URL, a URL libpq cannot parse
(``notaurl``), or a server that cannot be reached, does not answer in time or refuses the login.
A command prints that line after its own name and exits ``EXIT_CANNOT_CHECK``; never a traceback.

Every connection is bounded in time, so a command run from cron ends and says why
(docs/gates.md):

- connect timeout: 10 s, or ``$SUBSTRATE_CONNECT_TIMEOUT`` (whole seconds; libpq waits at
  least 2): how long to wait for the server to answer a connection;
- statement timeout: 30 s, or ``$SUBSTRATE_STATEMENT_TIMEOUT`` (seconds, decimals allowed, 0 for
  no limit): the session's ``statement_timeout``.

A command may pass its own values (``substrate gates --connect-timeout/--statement-timeout``);
else the environment decides, else the default. The review commands (verify, drift, schema,
scratch databases) read whole ledgers and catalogs by design (verify recomputes every seal), so
their default is no statement limit (``REVIEW``); the environment still bounds them. The
statement timeout is set right after the connection is made (``set_config``), not as a startup
option a connection pooler may refuse. A statement that outlasts it fails with SQLSTATE 57014,
which the command reports.

URLs are accepted in the SQLAlchemy spelling Alembic uses (``postgresql+psycopg://``) and in
libpq's (``postgresql://``); ``psql_url`` and ``to_conninfo`` give libpq's, which psql, psycopg
and ``alembic/env.py`` all accept. psycopg is imported when a connection is made, not before.
"""

from __future__ import annotations

import math
import os
import re

# Exit codes every sub-command shares (`substrate gates watchdog` adds 3: it closed something).
EXIT_OK = 0
EXIT_FINDING = 1  # drift, an unsafe gate, a refused call, ...
EXIT_CANNOT_CHECK = 2  # no database, a malformed URL, an unreachable server, bad arguments

DEFAULT_CONNECT_TIMEOUT = 10  # seconds
DEFAULT_STATEMENT_TIMEOUT = 30  # seconds
REVIEW = 0  # the review commands' default statement timeout: no limit
CONNECT_TIMEOUT_ENV = "SUBSTRATE_CONNECT_TIMEOUT"
STATEMENT_TIMEOUT_ENV = "SUBSTRATE_STATEMENT_TIMEOUT"
STATEMENT_TIMEOUT_SQLSTATE = "57014"  # query_canceled: what an outlasted statement timeout raises

_DRIVER = re.compile(r"^(postgres|postgresql)\+[A-Za-z0-9_]+://")


class CannotConnect(Exception):
    """No database URL, a malformed one, or a server that cannot be reached; one-line message."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def resolve_url(arg: str | None) -> str:
    """``--url``, else ``$DATABASE_URL``; CannotConnect when neither is given."""
    url = arg or os.environ.get("DATABASE_URL")
    if not url:
        raise CannotConnect("no database: pass --url postgresql://... or set DATABASE_URL")
    return url


def psql_url(url: str) -> str:
    """The URL as libpq spells it: ``postgresql+<driver>://`` becomes ``postgresql://``."""
    return _DRIVER.sub("postgresql://", url, count=1)


def to_conninfo(url: str) -> str:
    """A postgresql(+psycopg):// URL as psycopg accepts it; CannotConnect when libpq cannot
    parse it."""
    from psycopg import conninfo

    plain = psql_url(url)
    try:
        conninfo.conninfo_to_dict(plain)
    except Exception as error:  # psycopg.ProgrammingError: libpq's own parser said no
        raise CannotConnect(f"malformed database URL: {error}") from None
    return plain


# ---------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------


def connect_seconds(text: str) -> int:
    """A connect timeout as given on a command line or in the environment: whole seconds >= 1."""
    if not re.fullmatch(r"[0-9]{1,6}", text.strip()) or int(text) < 1:
        raise ValueError(f"{text!r}: expected whole seconds, at least 1")
    return int(text)


def statement_seconds(text: str) -> float:
    """A statement timeout in seconds (decimals allowed, 0 for no limit)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= 86400:
        raise ValueError(f"{text!r}: expected seconds between 0 (no limit) and 86400")
    return seconds


def timeouts(connect_timeout: int | None = None, statement_timeout: float | None = None,
             statement_default: float = DEFAULT_STATEMENT_TIMEOUT) -> tuple[int, float]:
    """(connect, statement) timeouts in seconds: the given values, else the environment's, else
    the defaults. CannotConnect when an environment value is not a timeout."""
    if connect_timeout is None:
        connect_timeout = _from_env(CONNECT_TIMEOUT_ENV, connect_seconds, DEFAULT_CONNECT_TIMEOUT)
    if statement_timeout is None:
        statement_timeout = _from_env(STATEMENT_TIMEOUT_ENV, statement_seconds,
                                      statement_default)
    return connect_timeout, statement_timeout


def _from_env(name: str, parse, default):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return parse(text)
    except ValueError as error:
        raise CannotConnect(f"{name}={error}") from None


def _milliseconds(seconds: float) -> str:
    """The statement_timeout setting: whole milliseconds, never 0 unless no limit is meant."""
    return f"{max(1, round(seconds * 1000)) if seconds else 0}ms"


def describe_seconds(seconds: float) -> str:
    """``30 s``, ``0.5 s``, ``no limit``: a timeout as a message says it."""
    if seconds == 0:
        return "no limit"
    return f"{seconds:g} s"


# ---------------------------------------------------------------------------
# The connection
# ---------------------------------------------------------------------------


def connect(url: str, *, autocommit: bool = True, application_name: str = "substrate",
            connect_timeout: int | None = None, statement_timeout: float | None = None,
            statement_default: float = DEFAULT_STATEMENT_TIMEOUT):
    """A psycopg connection to ``url`` with both timeouts set (see the module docstring);
    CannotConnect (one line) when there is none to have."""
    import psycopg

    info = to_conninfo(url)
    connect_s, statement_s = timeouts(connect_timeout, statement_timeout, statement_default)
    try:
        conn = psycopg.connect(info, autocommit=autocommit, application_name=application_name,
                               connect_timeout=connect_s)
    except psycopg.Error as error:
        # psycopg 3.2+ raises ConnectionTimeout; 3.1 an OperationalError saying so
        if isinstance(error, getattr(psycopg.errors, "ConnectionTimeout", ())) or (
                str(error).strip() == "connection timeout expired"):
            raise CannotConnect(
                f"cannot connect: no answer from the server within the connect timeout "
                f"({describe_seconds(max(connect_s, 2))}; {CONNECT_TIMEOUT_ENV})") from None
        code = f" (SQLSTATE {error.sqlstate})" if error.sqlstate else ""
        raise CannotConnect(f"cannot connect{code}: {error}") from None
    try:
        conn.execute("SELECT pg_catalog.set_config('statement_timeout', %s, false)",
                     (_milliseconds(statement_s),))
        if not autocommit:
            conn.commit()
    except psycopg.Error as error:
        conn.close()
        raise CannotConnect(f"cannot set the statement timeout: {error}") from None
    return conn
