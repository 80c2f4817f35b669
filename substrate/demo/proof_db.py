"""The scratch database of ``substrate proof`` (docs/runtime.md): made fresh on every run.

``recreate(url, name)`` works on the server of ``url`` (the demo database) and never touches
that database itself: it drops the scratch database ``name`` left by an earlier run, creates it
again from ``template0``, migrates it to head exactly as a deploy does (``alembic upgrade
head``, ``substrate.review.scratch.upgrade``) and loads the IU Core stand-ins of
``substrate/demo/iu_core_standins.sql``, which are labelled as stand-ins in their comments.

A database is dropped only when it is one this module made: its comment is ``MARK``. A database
of that name without the mark (someone's real data) stops the proof instead, and so does a
scratch name equal to the demo database's own. The scratch database stays after the proof, for
anyone who wants to look at its ledgers; the next run recreates it.
"""

from __future__ import annotations

import re
from pathlib import Path

from substrate import connect

STANDINS = Path(__file__).with_name("iu_core_standins.sql")
MARK = "substrate proof scratch database: demo stand-ins, not IU Core; recreated on every run"
DEFAULT_NAME = "substrate_proof"
NAME_RULE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class CannotPrepare(Exception):
    """The scratch database could not be made ready; the message says why."""


def recreate(url: str, name: str = DEFAULT_NAME) -> str:
    """Drop (when this module made it), create, migrate and stock the scratch database
    ``name`` on the server of ``url``; its URL. CannotPrepare or connect.CannotConnect."""
    from psycopg import Error, sql

    from substrate.review import scratch
    from substrate.review.tree import Tree

    if not NAME_RULE.fullmatch(name):
        raise CannotPrepare(f"{name!r} is not a scratch database name (lowercase letters, "
                            "digits and _, at most 63)")
    with connect.connect(url, application_name="substrate proof") as server:
        if server.info.dbname == name:
            raise CannotPrepare(f"the scratch database {name} would be the demo database "
                                "itself: pass another --scratch-db")
        found = server.execute(
            "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database"
            " WHERE datname = %s", (name,)).fetchall()
        if found and found[0][0] != MARK:
            raise CannotPrepare(f"a database {name} exists that substrate proof did not make; "
                                "it is left alone: pass another --scratch-db")
        try:
            if found:
                server.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    sql.Identifier(name)))
            server.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(name)))
            server.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(MARK)))
        except Error as error:
            raise CannotPrepare(f"cannot recreate the scratch database {name}: "
                                f"{error.diag.message_primary or error}") from None
    target = scratch.scratch_url(url, name)
    try:
        scratch.upgrade(target, "head", Tree())
    except scratch.CannotBuild as error:
        raise CannotPrepare(str(error)) from None
    with connect.connect(target, application_name="substrate proof") as conn:
        try:
            conn.execute(STANDINS.read_text())
        except Error as error:
            raise CannotPrepare(f"cannot load the stand-ins: "
                                f"{error.diag.message_primary or error}") from None
    return target
