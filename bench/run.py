"""`make bench`: every performance figure of issue 5, reproducible on one throw-away server.

    .venv/bin/python bench/run.py            # the full run (what the README shows)
    BENCH_SIZES=10000,100000 BENCH_ROUNDS=2 BENCH_SECONDS=3 .venv/bin/python bench/run.py

Items: (1) logger against plain INSERT throughput, at head and at the revisions before
(bench/throughput.py); (2) registry and health view latency, v1 against head, at each ledger
size (bench/views.py); (3) alembic upgrade head
against psql -f of the rendered SQL, (4) the test fixture's template clone, (5) substrate drift
/ verify (bench/tooling.py). Writes bench/results.json, bench/results.md (the tables) and
bench/view_latency.png; prints the tables.

Settings (environment):
    BENCH_SIZES      ledger sizes for item 2      (1000,10000,100000,1000000,10000000)
    BENCH_ROUNDS     item 1 rounds                (5)
    BENCH_SECONDS    item 1 seconds per pgbench   (5)
    BENCH_MODES      item 1 pgbench protocols     (simple,prepared)
    BENCH_VIEW_RUNS  item 2 timed runs per view   (7)
    BENCH_TOOL_RUNS  items 3-5 runs               (5)
    BENCH_ITEMS      which items                  (throughput,views,tooling)
    BENCH_OUT        output folder                (bench/)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import common
import plot
import throughput
import tooling
import views

DEFAULTS = {
    "BENCH_SIZES": "1000,10000,100000,1000000,10000000",
    "BENCH_ROUNDS": "5",
    "BENCH_SECONDS": "5",
    "BENCH_MODES": "simple,prepared",
    "BENCH_VIEW_RUNS": "7",
    "BENCH_TOOL_RUNS": "5",
    "BENCH_ITEMS": "throughput,views,tooling",
    "BENCH_OUT": str(common.BENCH_DIR),
}


def setting(name: str) -> str:
    return os.environ.get(name) or DEFAULTS[name]


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


def _f(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _x(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def tables(results: dict) -> str:
    out: list[str] = []
    m = results["machine"]
    out.append(
        f"Machine: {m['cpu']}, nproc {m['nproc']}, {m['ram_gb']:.1f} GB RAM, PostgreSQL "
        f"{m['postgresql']} (embedded, {m['storage']}, {', '.join(m['server_settings'])}), "
        f"Python {m['python']}; load average {m['load_average_start'][0]:.2f} at start, "
        f"{m['load_average_end'][0]:.2f} at end; {results['started']}, "
        f"{results['duration_s'] / 60:.1f} min."
    )
    if "throughput" in results:
        t = results["throughput"]
        labels = [label for label, _, _ in throughput.VARIANTS]
        out += [
            "",
            f"**1. Logger against plain INSERT** (pgbench, {t['clients']} clients, "
            f"{t['threads']} threads, {t['rounds']} rounds x {t['seconds_per_run']} s per "
            f"variant, rotated; median tps and, in brackets, the median per-round ratio "
            f"to the baseline `{t['baseline']}`; "
            + ", ".join(f"{key} = {revision}" for key, revision in t["revisions"].items())
            + ")",
            "",
        ]
        out.append("| workload | pgbench -M | " + " | ".join(labels) + " |")
        out.append("|---|---|" + "---:|" * len(labels))
        for workload, modes in t["workloads"].items():
            for mode, variants in modes.items():
                cells = [
                    f"{_f(variants[label]['tps_p50'], 0)} ({variants[label]['ratio_p50']:.3f})"
                    for label in labels
                ]
                out.append(f"| {workload} | {mode} | " + " | ".join(cells) + " |")
    if "views" in results:
        v = results["views"]
        sizes = v["sizes"]
        # The rows past the watermark: the last v["tail"], or all of them in a smaller ledger.
        tail = f"{v['tail']:,} rows past the watermark"
        short = [entry for entry in sizes if entry["rows_past_watermark"] < v["tail"]]
        if short:
            tail += (
                " ("
                + ", ".join(
                    f"all {entry['rows_past_watermark']:,} at {entry['rows']:,}" for entry in short
                )
                + ")"
            )
        out += [
            "",
            f"**2. View latency, ms** (`SELECT *` from a client, p50 / p95 of "
            f"{v['runs']} runs, v1 (as 0003_operator_runtime created them) and head "
            f"({v['revision']}) interleaved on the same rows, with {tail}; head returned "
            f"exactly v1's rows at every size; tally rebuild = "
            f"fn_dot_iu_command_run_tally_rebuild() at head, timed when the ledger held "
            f"all but those last rows: what a full recount costs)",
            "",
        ]
        out.append(
            "| ledger rows | registry v1 | registry head | v1/head | health v1 | "
            "health head | v1/head | tally rebuild |"
        )
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for entry in sizes:
            r, h = entry["registry"], entry["health"]
            out.append(
                f"| {entry['rows']:,} | {_f(r['v1_ms']['p50'])} / {_f(r['v1_ms']['p95'])} | "
                f"{_f(r['head_ms']['p50'])} / {_f(r['head_ms']['p95'])} | "
                f"{_x(r['speedup_p50'])} | {_f(h['v1_ms']['p50'])} / {_f(h['v1_ms']['p95'])} | "
                f"{_f(h['head_ms']['p50'])} / {_f(h['head_ms']['p95'])} | "
                f"{_x(h['speedup_p50'])} | {_f(entry['rebuild_seconds'])} s |"
            )
        if "growth" in v:
            g = v["growth"]
            out += [
                "",
                f"From {g['from_rows']:,} to {g['to_rows']:,} rows the head p50 changes "
                f"x{g['registry_head_p50_ratio']:.2f} (registry) and "
                f"x{g['health_head_p50_ratio']:.2f} (health); v1: "
                f"x{g['registry_v1_p50_ratio']:,.0f} and x{g['health_v1_p50_ratio']:,.0f}.",
            ]
    if "tooling" in results:
        tl = results["tooling"]
        mig, cl, cmd = tl["migrate"], tl["clone"], tl["commands"]
        out += [
            "",
            f"**3-5. Tooling** (seconds, p50 / p95 of {mig['alembic_s']['runs']} runs "
            f"unless noted; ratio of p50s to the baseline in the same run)",
            "",
            "| figure | p50 / p95 s | baseline | baseline p50 s | ratio |",
            "|---|---:|---|---:|---:|",
            f"| 3. `alembic upgrade head`, empty database | {_f(mig['alembic_s']['p50'])} / "
            f"{_f(mig['alembic_s']['p95'])} | `psql -f` of the rendered SQL | "
            f"{_f(mig['psql_s']['p50'])} | {mig['ratio_p50']:.1f} |",
            f"| 4. test fixture: clone the migrated template + drop "
            f"({cl['clone_and_drop_s']['runs']} runs) | {_f(cl['clone_and_drop_s']['p50'], 3)}"
            f" / {_f(cl['clone_and_drop_s']['p95'], 3)} | `alembic upgrade head` (item 3) | "
            f"{_f(cl['migrate_p50_s'])} | {cl['ratio_p50']:.3f} |",
        ]
        for name in ("drift", "verify"):
            entry = cmd[name]
            if entry == "not available":
                out.append(f"| 5. `substrate {name}`, migrated database | not available | | | |")
                continue
            out.append(
                f"| 5. `substrate {name}`, migrated database (exit {entry['exit_code']}) | "
                f"{_f(entry['seconds']['p50'])} / {_f(entry['seconds']['p95'])} | "
                f"`substrate --help` | {_f(cmd['baseline_s']['p50'])} | {entry['ratio_p50']:.1f} |"
            )
    return "\n".join(out) + "\n"


def main() -> int:
    items = set(setting("BENCH_ITEMS").split(","))
    sizes = [int(size) for size in setting("BENCH_SIZES").split(",")]
    out_dir = Path(setting("BENCH_OUT"))
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {name: setting(name) for name in DEFAULTS if name != "BENCH_OUT"},
    }
    with common.server() as server:
        results["machine"] = machine(server)
        common.log(
            f"server: PostgreSQL {results['machine']['postgresql']} at {server.cluster.rundir}"
        )
        if "throughput" in items:
            results["throughput"] = throughput.run(
                server,
                int(setting("BENCH_ROUNDS")),
                int(setting("BENCH_SECONDS")),
                setting("BENCH_MODES").split(","),
            )
        if "views" in items:
            results["views"] = views.run(server, sizes, int(setting("BENCH_VIEW_RUNS")))
        if "tooling" in items:
            results["tooling"] = tooling.run(server, int(setting("BENCH_TOOL_RUNS")))
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["duration_s"] = time.perf_counter() - started
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = tables(results)
    (out_dir / "results.md").write_text(text)
    if "views" in results:
        plot.write(results, out_dir / "view_latency.png")
    print(text)
    common.log(
        f"wrote {out_dir / 'results.json'}, results.md"
        + (", view_latency.png" if "views" in results else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
