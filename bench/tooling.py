"""Items 3-5: migrating, cloning the test template, and the drift / verify commands.

3. ``alembic upgrade head`` against ``psql -v ON_ERROR_STOP=1 -f`` of the rendered
   ``alembic upgrade base:head --sql`` (rendered once, beforehand), each on a fresh empty
   database, interleaved; ratio alembic / psql.
4. What the test fixture pays per test: pytest-postgresql's DatabaseJanitor creating a database
   from the migrated template and dropping it (tests/conftest.py's ``db_name``), against what a
   test would pay without the template (``alembic upgrade head`` on an empty database, item 3).
5. ``substrate drift --url`` and ``substrate verify --url`` on a database migrated to head,
   against ``substrate --help`` (the command's own start-up: Python, imports), interleaved;
   "not available" for a sub-command the CLI does not have.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from common import PROJECT_ROOT, Server, alembic, alternate, log, summary, timed

_names = itertools.count(1)
SUBSTRATE = Path(sys.executable).with_name("substrate")


def _fresh(server: Server, prefix: str) -> str:
    name = f"{prefix}_{next(_names)}"
    server.create_database(name)
    return name


def migrate(server: Server, runs: int) -> dict:
    rendered = alembic("postgresql://render-only", "upgrade", "base:head", "--sql").stdout
    script = Path(server.cluster.rundir) / "upgrade.sql"
    script.write_text(rendered)
    seconds: dict[str, list[float]] = {"alembic upgrade head": [], "psql -f rendered SQL": []}
    for number in range(runs):
        order = list(seconds) if number % 2 == 0 else list(reversed(seconds))
        for how in order:
            dbname = _fresh(server, "bench_migrate")
            if how == "alembic upgrade head":
                seconds[how].append(timed(lambda d=dbname: alembic(server.url(d), "upgrade",
                                                                   "head")))
            else:
                seconds[how].append(timed(lambda d=dbname: subprocess.run(
                    [server.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                     server.conninfo(d), "-f", str(script)],
                    check=True, capture_output=True)))
            server.drop_database(dbname)
    alembic_s = summary(seconds["alembic upgrade head"])
    psql_s = summary(seconds["psql -f rendered SQL"])
    return {"alembic_s": alembic_s, "psql_s": psql_s,
            "ratio_p50": alembic_s["p50"] / psql_s["p50"], "rendered_bytes": len(rendered)}


def clone(server: Server, runs: int, migrate_p50: float) -> dict:
    from pytest_postgresql.janitor import DatabaseJanitor

    template = "bench_template"
    server.create_database(template)
    alembic(server.url(template), "upgrade", "head")
    with server.connect("postgres") as conn:
        conn.execute(f"ALTER DATABASE {template} WITH is_template true")
    cluster = server.cluster
    seconds = []
    for _ in range(runs):
        janitor = DatabaseJanitor(user="postgres", host="127.0.0.1", port=cluster.port,
                                  dbname=f"bench_clone_{next(_names)}",
                                  template_dbname=template, password=None)
        seconds.append(timed(lambda j=janitor: (j.init(), j.drop())))
    with server.connect("postgres") as conn:
        conn.execute(f"ALTER DATABASE {template} WITH is_template false")
    server.drop_database(template)
    clone_s = summary(seconds)
    return {"clone_and_drop_s": clone_s, "migrate_p50_s": migrate_p50,
            "ratio_p50": clone_s["p50"] / migrate_p50}


def commands(server: Server, runs: int) -> dict:
    dbname = _fresh(server, "bench_tools")
    alembic(server.url(dbname), "upgrade", "head")
    url = server.url(dbname)
    help_text = subprocess.run([str(SUBSTRATE), "--help"], capture_output=True,
                               text=True).stdout
    available = {name: _has(help_text, name) for name in ("drift", "verify")}
    actions = {"substrate --help": lambda: subprocess.run([str(SUBSTRATE), "--help"],
                                                          capture_output=True)}
    exit_codes = {}
    for name in ("drift", "verify"):
        if available[name]:
            argv = [str(SUBSTRATE), name, "--url", url]
            exit_codes[name] = subprocess.run(argv, capture_output=True,
                                              cwd=PROJECT_ROOT).returncode
            actions[f"substrate {name}"] = (
                lambda a=argv: subprocess.run(a, capture_output=True, cwd=PROJECT_ROOT))
    seconds = alternate(actions, runs)
    baseline = summary(seconds["substrate --help"])
    results: dict = {"baseline": "substrate --help", "baseline_s": baseline}
    for name in ("drift", "verify"):
        if not available[name]:
            results[name] = "not available"
            continue
        timing = summary(seconds[f"substrate {name}"])
        results[name] = {"seconds": timing, "exit_code": exit_codes[name],
                         "ratio_p50": timing["p50"] / baseline["p50"]}
    server.drop_database(dbname)
    return results


def _has(help_text: str, name: str) -> bool:
    """Whether `substrate --help` lists the sub-command (argparse prints {a,b,c})."""
    for line in help_text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            return name in line.strip("{}").split(",")
    return False


def run(server: Server, runs: int) -> dict:
    log(f"tooling: alembic upgrade head vs psql -f ({runs} runs each)")
    migration = migrate(server, runs)
    log(f"tooling: template clone ({runs * 2} runs)")
    cloning = clone(server, runs * 2, migration["alembic_s"]["p50"])
    log(f"tooling: substrate drift / verify ({runs} runs each)")
    return {"migrate": migration, "clone": cloning, "commands": commands(server, runs)}
