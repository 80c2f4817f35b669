"""The project's ``alembic`` command line, run as a deploy runs it, without paying for a new
interpreter each time.

``run(argv, cwd)`` is ``subprocess.run([python, "-m", "alembic", *argv], cwd=cwd)``: the same
entry point (``alembic.config.main``), arguments, working directory, environment (no
``DATABASE_URL``), exit status and stdout/stderr bytes. It forks the test process instead of
starting a new one, so the imports the test process already holds (SQLAlchemy, Alembic,
psycopg: about 0.6 s of every fresh ``python -m alembic``) are not paid again; the child runs
the command on file descriptors 1 and 2 of its own and leaves with ``os._exit``, so nothing of
the parent (its connections, its pytest capture, its atexit hooks) is touched. Everything the
command does to the database, and what env.py prints, is the real thing.

``ALEMBIC_CLI=subprocess`` runs a real subprocess instead (the check that the two agree).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

_SUBPROCESS = os.environ.get("ALEMBIC_CLI") == "subprocess" or not hasattr(os, "fork")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "alembic", *argv]
    if _SUBPROCESS:
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(argv, cwd, env, out.fileno(), err.fileno())
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            command, os.waitstatus_to_exitcode(status),
            out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def _child(argv: list[str], cwd: Path, env: dict[str, str], out: int, err: int) -> None:
    code = 1
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives until os._exit
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.stdin = open(os.devnull)  # noqa: SIM115
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        # A fresh interpreter would import the revisions' helpers from the tree's own path.
        for name in [name for name in sys.modules if name.startswith("revision_helpers")]:
            del sys.modules[name]
        sys.argv = [sys.executable, *argv]
        from alembic.config import main

        try:
            main(argv=argv, prog="alembic")
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:  # what an uncaught exception does to `python -m alembic`
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)
