"""The psql executor: the runtime's transactions through the ``psql`` client, on this host or
through a remote shell (docs/runtime.md, "Executors").

One ``psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -f -`` process per transaction,
the SQL on its stdin:

* binding: every parameter travels as the hex of its UTF-8 and is decoded by the server,
  ``pg_catalog.convert_from(pg_catalog.decode('<hex>', 'hex'), 'UTF8')``, then cast by the
  statement (``...::uuid``). No value is ever part of the command line, and the script holds
  nothing but the runtime's own SQL text and hex digits, so no tab, newline, quote, backslash,
  semicolon or psql variable in a value can change what runs;
* output: each row is printed as ``<nonce> R <step> <hex of to_jsonb(row)::text>``, each
  finished statement as ``<nonce> D <step>``, BEGIN as ``<nonce> B`` and COMMIT as
  ``<nonce> C`` (the nonce is random per call), so whatever a value holds, rows are read back
  exactly and nothing else is mistaken for one;
* errors: ``client_min_messages = error`` keeps notices (which may quote values) off stderr;
  the first ``ERROR:  <SQLSTATE>:`` line is the error, its statement the one after the last
  ``D`` marker. Exit 2 or a missing psql is ``ExecutorUnavailable``; a connection lost after
  the last statement but before ``C`` is ``OutcomeUnknown``;
* statements that depend on an earlier one's row count (``RowCount``) read psql's
  ``ROW_COUNT`` variable, so the client must be psql 11 or later;
* remote: ``remote=("ssh", "db1")`` runs ``ssh db1 '<the psql command line, shlex-quoted, as
  ONE argument>'``: the remote shell re-splits that one string into exactly the original
  arguments, so a space, quote or separator in the connection string survives.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
from collections.abc import Mapping, Sequence

from substrate.runtime.errors import DatabaseError, ExecutorUnavailable, OutcomeUnknown
from substrate.runtime.executors import (
    APPLICATION_NAME,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STATEMENT_TIMEOUT,
    RowCount,
    Statement,
    check_statement,
    first_line,
    load_json,
)

CONNINFO_KEY = re.compile(r"[a-z_]{1,64}")
SETTING = re.compile(r"[0-9]{1,9}(us|ms|s|min|h|d)?")
ERROR_LINE = re.compile(r"^(?:psql:.*?:[0-9]+: )?(?:ERROR|FATAL|PANIC):  ([0-9A-Z]{5}): (.*)$",
                        re.M)
BIND = "pg_catalog.convert_from(pg_catalog.decode('{hex}', 'hex'), 'UTF8')"
ROW = ("SELECT '{nonce} R {step} ' || pg_catalog.encode(pg_catalog.convert_to("
       "pg_catalog.to_jsonb(r)::text, 'UTF8'), 'hex') FROM ({sql}) AS r;")


def _conninfo_value(value: object) -> str:
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PsqlExecutor:
    def __init__(self, host: str | None, port: int | str | None, user: str | None,
                 dbname: str | None, *, psql: str = "psql", remote: Sequence[str] | None = None,
                 password: str | None = None, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
                 statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT,
                 lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
                 application_name: str = APPLICATION_NAME,
                 extra: Mapping[str, str] | None = None):
        for name, value in (("statement_timeout", statement_timeout),
                            ("lock_timeout", lock_timeout)):
            if not SETTING.fullmatch(str(value)):
                raise ValueError(f"{name} {value!r}: expected e.g. 30s, 500ms, 5min")
        # ``extra``: any other libpq connection settings (sslmode, sslrootcert, options, ...),
        # as a URL carries them; a setting named here too takes its value from ``extra``.
        keys = {"host": host, "port": port, "user": user, "dbname": dbname,
                "connect_timeout": connect_timeout, "application_name": application_name,
                **(extra or {})}
        for key in keys:
            if not CONNINFO_KEY.fullmatch(key) or key in ("password", "sslpassword"):
                raise ValueError(f"{key!r} is not a connection setting psql can be given here")
        self.conninfo = " ".join(f"{key}={_conninfo_value(value)}"
                                 for key, value in keys.items() if value is not None)
        self.psql = psql
        self.remote = tuple(remote) if remote else None
        self.password = password
        self.settings = {"statement_timeout": statement_timeout, "lock_timeout": lock_timeout}

    def argv(self) -> list[str]:
        """The command line: psql's, or the remote shell's with psql's as ONE argument."""
        command = [self.psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                   "-v", "VERBOSITY=verbose", "-v", "SHOW_CONTEXT=never",
                   "-d", self.conninfo, "-f", "-"]
        return [*self.remote, shlex.join(command)] if self.remote else command

    def script(self, statements: Sequence[Statement], read_only: bool, nonce: str) -> str:
        lines = ["SET client_min_messages = error;"]
        lines += [f"SET {name} = '{value}';" for name, value in self.settings.items()]
        lines.append("BEGIN READ ONLY;" if read_only else "BEGIN;")
        lines.append(f"\\echo {nonce} B")
        for step, statement in enumerate(statements):
            check_statement(statement, step)
            if ";" in statement.sql or "\\" in statement.sql:
                raise ValueError("a statement for psql holds no ';' and no backslash")
            lines.append(ROW.format(nonce=nonce, step=step, sql=_bind(statement)))
            lines.append(f"\\set rt_rows_{step} :ROW_COUNT")
            lines.append(f"\\echo {nonce} D {step}")
        lines += ["COMMIT;", f"\\echo {nonce} C", ""]
        return "\n".join(lines)

    def run(self, statements: Sequence[Statement], *,
            read_only: bool = False) -> list[list[dict]]:
        nonce = secrets.token_hex(8)
        script = self.script(statements, read_only, nonce)
        env = dict(os.environ)
        if self.password is not None and not self.remote:
            env["PGPASSWORD"] = self.password
        try:
            done = subprocess.run(self.argv(), input=script.encode("ascii"),
                                  capture_output=True, env=env)
        except OSError as error:
            raise ExecutorUnavailable(f"cannot run {self.argv()[0]}: {error}") from None
        rows, began, finished, committed = _parse(done.stdout, nonce, len(statements))
        if done.returncode == 0 and committed:
            return rows
        stderr = done.stderr.decode("utf-8", errors="replace")
        error = ERROR_LINE.search(stderr)
        if done.returncode == 3 and error:
            step = finished if began and finished < len(statements) else None
            raise DatabaseError(error.group(1), error.group(2).strip(), step)
        why = first_line(stderr) or f"psql exited {done.returncode}"
        if finished == len(statements) and not read_only and not committed:
            raise OutcomeUnknown(f"the outcome of COMMIT is unknown: {why}")
        raise ExecutorUnavailable(why)

    def close(self) -> None:
        """Nothing to close: every transaction is its own psql process."""


def _bind(statement: Statement) -> str:
    parts = statement.sql.split("%s")
    out = [parts[0]]
    for param, part in zip(statement.params, parts[1:], strict=True):
        if param is None:
            out.append("NULL")
        elif isinstance(param, RowCount):
            out.append(f":'rt_rows_{param.step}'")
        else:
            out.append(BIND.format(hex=param.encode("utf-8").hex()))
        out.append(part)
    return "".join(out)


def _parse(stdout: bytes, nonce: str, count: int) -> tuple[list[list[dict]], bool, int, bool]:
    """(rows per statement, began, statements finished, committed) from psql's output."""
    rows: list[list[dict]] = [[] for _ in range(count)]
    began, finished, committed = False, 0, False
    for raw in stdout.decode("ascii", errors="replace").splitlines():
        fields = raw.split(" ")
        if len(fields) < 2 or fields[0] != nonce:
            continue
        if fields[1] == "B":
            began = True
        elif fields[1] == "R" and len(fields) == 4:
            rows[int(fields[2])].append(load_json(bytes.fromhex(fields[3]).decode("utf-8")))
        elif fields[1] == "D":
            finished = int(fields[2]) + 1
        elif fields[1] == "C":
            committed = True
    return rows, began, finished, committed


def psql_executor(host: str | None, port: int | str | None, user: str | None,
                  dbname: str | None, *, psql: str = "psql",
                  remote: Sequence[str] | None = None, password: str | None = None,
                  connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
                  statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT,
                  lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
                  application_name: str = APPLICATION_NAME,
                  extra: Mapping[str, str] | None = None) -> PsqlExecutor:
    """An executor that runs ``psql`` (``remote=("ssh", "host")`` runs it there). A password,
    when given, goes to a local psql through PGPASSWORD; a remote one uses its ~/.pgpass.
    ``extra`` holds any other libpq settings (sslmode, sslrootcert, options, ...), never a
    password."""
    return PsqlExecutor(host, port, user, dbname, psql=psql, remote=remote, password=password,
                        connect_timeout=connect_timeout, statement_timeout=statement_timeout,
                        lock_timeout=lock_timeout, application_name=application_name,
                        extra=extra)
