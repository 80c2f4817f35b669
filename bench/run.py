"""`make bench`: every performance figure, reproducible on one throw-away server.

    .venv/bin/python bench/run.py            # the full run (what the README shows)
    BENCH_SIZES=10000,100000 BENCH_SEAL_SIZES=100000 BENCH_UPGRADE_ROWS=100000 \\
        BENCH_ROUNDS=2 BENCH_SECONDS=3 .venv/bin/python bench/run.py     # a quick run

Items: (1) logger against plain INSERT throughput, at head and at 0009 (bench/throughput.py),
(1b) where the head logger's work goes, part by part, in instructions counted by callgrind
(bench/logger_parts.py; needs valgrind);
(2) registry and health view latency, v1 against head, at each ledger size (bench/views.py);
(3) alembic upgrade head against psql -f of the rendered SQL, (4) the test fixture's template
clone, (5) substrate drift / verify (bench/tooling.py); (6) logger latency while each upgrade
step from 0009 runs over a big ledger (bench/upgrade.py); (7) a full seal verification at each
size (bench/sealcheck.py); (8) a gate reader with a live window against the reader before 0011
(bench/readers.py); (9) one OperatorRuntime.apply against the bare transaction it stands for
(bench/runtime_apply.py). Items 2 and 7 share one ledger grown through their sizes
(bench/growing.py). Writes bench/results.json, bench/results.md (the tables, bench/tables.py)
and bench/view_latency.png; prints the tables.

Settings (environment):
    BENCH_SIZES         item 2 ledger sizes           (1000,10000,100000,1000000,10000000)
    BENCH_ROUNDS        item 1 rounds                 (12)
    BENCH_SECONDS       item 1 seconds per pgbench    (2)
    BENCH_MODES         item 1 pgbench protocols      (simple,prepared)
    BENCH_VIEW_RUNS     item 2 timed runs per view    (7)
    BENCH_TOOL_RUNS     items 3-5 runs                (5)
    BENCH_UPGRADE_ROWS  item 6 ledger rows at 0009    (10000000)
    BENCH_UPGRADE_STEPS item 6 steps, in order        (all: each step from 0010 to head)
    BENCH_SEAL_SIZES    item 7 ledger sizes           (1000000,10000000)
    BENCH_SEAL_RUNS     item 7 runs per size          (3)
    BENCH_READER_CALLS  item 8 client calls per reader (5000)
    BENCH_APPLY_CALLS   item 9 calls per variant      (300)
    BENCH_ITEMS         which items    (throughput,logger_parts,readers,runtime,views,seals,
                                        upgrade,tooling)
    BENCH_OUT           output folder                 (bench/)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import common
import growing
import logger_parts
import plot
import readers
import runtime_apply
import sealcheck
import tables
import throughput
import tooling
import upgrade
import views

DEFAULTS = {
    "BENCH_SIZES": "1000,10000,100000,1000000,10000000",
    "BENCH_ROUNDS": "12",
    "BENCH_SECONDS": "2",
    "BENCH_MODES": "simple,prepared",
    "BENCH_VIEW_RUNS": "7",
    "BENCH_TOOL_RUNS": "5",
    "BENCH_UPGRADE_ROWS": "10000000",
    "BENCH_UPGRADE_STEPS": "all",
    "BENCH_SEAL_SIZES": "1000000,10000000",
    "BENCH_SEAL_RUNS": "3",
    "BENCH_READER_CALLS": "5000",
    "BENCH_APPLY_CALLS": "300",
    "BENCH_ITEMS": "throughput,logger_parts,readers,runtime,views,seals,upgrade,tooling",
    "BENCH_OUT": str(common.BENCH_DIR),
}
SEAL_GOAL = {"goal_rows": 10_000_000, "goal_seconds": 60}
MEASURED_PATHS = ("alembic", "sql_functions", "sql_views", "substrate", "seeds")


def setting(name: str) -> str:
    return os.environ.get(name) or DEFAULTS[name]


def numbers(name: str) -> list[int]:
    return [int(value) for value in setting(name).split(",") if value]


def machine(server: common.Server) -> dict:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "ram_gb": total_kb / 1024 / 1024,
        "cpu": model,
        "postgresql": server.version(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "storage": "tmpfs (/dev/shm)",
        "server_settings": list(common.SETTINGS),
        "load_average_start": list(os.getloadavg()),
    }


def tree() -> dict:
    """The commit measured, and what differed from it under the paths the figures depend on
    (other work may change the tree while a long run goes on)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=common.PROJECT_ROOT)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "changed": git("status", "--porcelain", "--", *MEASURED_PATHS).splitlines()}


def sized(server: common.Server, items: set[str], results: dict) -> None:
    """Items 2 and 7 on one ledger grown through the sizes either of them measures."""
    view_sizes = set(numbers("BENCH_SIZES")) if "views" in items else set()
    seal_sizes = set(numbers("BENCH_SEAL_SIZES")) if "seals" in items else set()
    grown = growing.GrowingLedger(server, "bench_sized")
    if view_sizes:
        views.setup(grown.conn)
        results["views"] = {"runs": int(setting("BENCH_VIEW_RUNS")),
                            "revision": grown.revision, "tail": growing.TAIL, "sizes": []}
    if seal_sizes:
        results["seals"] = {"runs": int(setting("BENCH_SEAL_RUNS")), **SEAL_GOAL,
                            "revision": grown.revision, "sizes": []}
    for size in sorted(view_sizes | seal_sizes):
        facts = grown.grow_to(size)
        if size in view_sizes:
            results["views"]["sizes"].append(
                views.measure(grown.conn, facts, results["views"]["runs"]))
        if size in seal_sizes:
            results["seals"]["sizes"].append(
                {**sealcheck.measure(server, grown.dbname, grown.conn, size,
                                     results["seals"]["runs"]), "ledger": facts})
    if view_sizes:
        results["views"]["database_bytes"] = grown.database_bytes()
        growth = views.growth(results["views"]["sizes"])
        if growth:
            results["views"]["growth"] = growth
    grown.close()


def main() -> int:
    items = set(setting("BENCH_ITEMS").split(","))
    out_dir = Path(setting("BENCH_OUT"))
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {name: setting(name) for name in DEFAULTS if name != "BENCH_OUT"},
        "tree_start": tree(),
    }
    with common.server() as server:
        results["machine"] = machine(server)
        common.log(
            f"server: PostgreSQL {results['machine']['postgresql']} at {server.cluster.rundir}"
            f"; load average {results['machine']['load_average_start'][0]:.2f}"
        )
        if "throughput" in items:
            results["throughput"] = throughput.run(
                server, int(setting("BENCH_ROUNDS")), int(setting("BENCH_SECONDS")),
                setting("BENCH_MODES").split(","))
        if "logger_parts" in items:
            results["logger_parts"] = logger_parts.run(server)
        if "readers" in items:
            results["readers"] = readers.run(server, int(setting("BENCH_READER_CALLS")))
        if "runtime" in items:
            results["runtime"] = runtime_apply.run(server, int(setting("BENCH_APPLY_CALLS")))
        if items & {"views", "seals"}:
            sized(server, items, results)
        if "upgrade" in items:
            steps = setting("BENCH_UPGRADE_STEPS")
            results["upgrade"] = upgrade.run(
                server, int(setting("BENCH_UPGRADE_ROWS")),
                common.steps_after(upgrade.START) if steps == "all" else steps.split(","))
        if "tooling" in items:
            results["tooling"] = tooling.run(server, int(setting("BENCH_TOOL_RUNS")))
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["tree_end"] = tree()
    results["duration_s"] = time.perf_counter() - started
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = tables.render(results)
    (out_dir / "results.md").write_text(text)
    if "views" in results and results["views"]["sizes"]:
        plot.write(results, out_dir / "view_latency.png")
    print(text)
    common.log(f"wrote {out_dir / 'results.json'}, results.md"
               + (", view_latency.png" if "views" in results else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
