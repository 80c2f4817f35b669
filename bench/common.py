"""What every bench item shares: the throw-away server, timing, statistics, the Alembic CLI.

The server is ``substrate.devdb``'s, in a fresh cluster on tmpfs (``/dev/shm``) with
``devdb.FAST_SETTINGS`` (fsync, synchronous_commit and full_page_writes off: durability is
not what is measured) on a free port, removed afterwards. Every figure is a median over several
runs, and every comparison is a ratio to a baseline measured in the same run, alternating with
it, because the machine is shared.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from substrate.devdb import server as devdb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
# Room for ten million ledger rows, their indexes and WAL.
SETTINGS = (*devdb.FAST_SETTINGS, "max_wal_size=2GB", "checkpoint_timeout=30min")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (what numpy calls 'linear')."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict:
    return {
        "p50": median(values),
        "p95": percentile(values, 95),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def timed(action: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(actions: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Time each action ``runs`` times, interleaved (a, b, c, b, c, a, ...), one warm-up each."""
    for action in actions.values():
        action()
    seconds: dict[str, list[float]] = {name: [] for name in actions}
    names = list(actions)
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(timed(actions[name]))
    return seconds


class Server:
    """A running throw-away cluster and how to reach it."""

    def __init__(self, cluster: devdb.Cluster):
        self.cluster = cluster
        self.bindir = cluster.bindir

    def conninfo(self, dbname: str) -> str:
        return self.cluster.conninfo(dbname)

    def url(self, dbname: str) -> str:
        return self.cluster.url(dbname)

    def connect(self, dbname: str, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit)

    def create_database(self, dbname: str, template: str | None = None) -> None:
        with self.connect("postgres") as conn:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
            if template:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(statement)

    def drop_database(self, dbname: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))

    def version(self) -> str:
        with self.connect("postgres") as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


@contextmanager
def server() -> Iterator[Server]:
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() else Path(tempfile.gettempdir())
    rundir = Path(tempfile.mkdtemp(prefix="substrate-bench-", dir=root))
    cluster = devdb.Cluster(
        bindir=devdb.resolve_bindir(),
        rundir=rundir,
        port=devdb.free_port(),
        settings=SETTINGS,
    )
    cluster.init()
    cluster.start()
    try:
        yield Server(cluster)
    finally:
        cluster.stop()
        shutil.rmtree(rundir, ignore_errors=True)


def alembic(url: str, *args: str) -> subprocess.CompletedProcess:
    """The project's Alembic CLI, as a deploy runs it."""
    command = [
        sys.executable,
        "-m",
        "alembic",
        "-c",
        str(PROJECT_ROOT / "alembic.ini"),
        "-x",
        f"url={url}",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"alembic {' '.join(args)}: {result.stderr}")
    return result


def revisions(*names: str) -> dict[str, str]:
    """Each of ``names`` ("head" or a revision id) resolved to its revision id by the tree."""
    from substrate.review.tree import Tree

    tree = Tree()
    resolved = {}
    for name in names:
        if name == "head":
            resolved[name] = tree.head()
        else:
            resolved[name] = tree.script.get_revision(name).revision
    return resolved


def steps_after(start: str) -> list[str]:
    """Every revision after ``start`` up to head, in the order an upgrade takes them."""
    from substrate.review.tree import Tree

    walked = [rev.revision for rev in Tree().script.walk_revisions(start, "heads")]
    return [revision for revision in reversed(walked) if revision != start]


def database_revision(server: Server, dbname: str) -> str:
    """The revision(s) the database records in alembic_version, comma-joined."""
    with server.connect(dbname) as conn:
        return conn.execute(
            "SELECT string_agg(version_num, ',' ORDER BY version_num) FROM public.alembic_version"
        ).fetchone()[0]


def migrated(server: Server, dbname: str, revision: str) -> str:
    """A new database ``dbname`` upgraded to ``revision``; returns the revision it records."""
    server.create_database(dbname)
    alembic(server.url(dbname), "upgrade", revision)
    found = database_revision(server, dbname)
    if found != revision:
        raise RuntimeError(f"{dbname}: upgraded to {revision} but alembic_version says {found}")
    return found
