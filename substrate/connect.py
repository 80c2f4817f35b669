"""How every sub-command finds and reaches its database: one URL resolver, one connector.

``resolve_url(arg)`` takes ``--url``, else ``$DATABASE_URL``. ``connect(url)`` returns a psycopg
connection or raises ``CannotConnect`` with a one-line message: no URL, a URL libpq cannot parse
(``notaurl``), or a server that cannot be reached or refuses the login. A command prints that
line after its own name and exits ``EXIT_CANNOT_CHECK``; never a traceback.

URLs are accepted in the SQLAlchemy spelling Alembic uses (``postgresql+psycopg://``) and in
libpq's (``postgresql://``); ``psql_url`` and ``to_conninfo`` give libpq's, which psql, psycopg
and ``alembic/env.py`` all accept. psycopg is imported when a connection is made, not before.
"""

from __future__ import annotations

import os
import re

# Exit codes every sub-command shares (`substrate gates watchdog` adds 3: it closed something).
EXIT_OK = 0
EXIT_FINDING = 1  # drift, an unsafe gate, a refused call, ...
EXIT_CANNOT_CHECK = 2  # no database, a malformed URL, an unreachable server, bad arguments

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


def connect(url: str, *, autocommit: bool = True, application_name: str = "substrate",
            connect_timeout: int = 10):
    """A psycopg connection to ``url``; CannotConnect (one line) when there is none to have."""
    import psycopg

    info = to_conninfo(url)
    try:
        return psycopg.connect(info, autocommit=autocommit, application_name=application_name,
                               connect_timeout=connect_timeout)
    except psycopg.Error as error:
        code = f" (SQLSTATE {error.sqlstate})" if error.sqlstate else ""
        raise CannotConnect(f"cannot connect{code}: {error}") from None
