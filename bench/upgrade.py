"""Item 6: what an upgrade does to loggers that keep writing while it runs.

A database at 0009_tally_watermark gets a big ledger (``ledger.grow``, bulk rows as the
superuser; the tally rebuilt so its watermark is at the last row, as the folds would have it).
Then, for each step (by default every step from 0010_least_privilege to head), pgbench starts
4 logger clients (default protocol) calling ``fn_dot_iu_command_log`` with a 'planned' row of
dot_iu_add_piece, a row every logger from 0009 to head accepts (the logger's signature never
changed), every call logged with its latency; a few seconds later ``alembic upgrade <step>``
runs (the project's CLI, ``-x url=...``), and a few seconds after it ends the clients stop.

Reported per step: the upgrade's wall time, and for the logger calls that overlap it (started
before it ended, ended after it started) their number, p50, p99 and max latency, how many took
more than a second, how many failed and why (a deadlock is logged and the client carries on;
any other error stops that client), the longest time in which no call completed at all, and
what the clients waited for (``lockwatch``: the lock and the statement holding it).
The calls before the upgrade give the same figures unloaded. After the last step the seal
chain 0012 made over the existing rows is checked (``substrate.review.verify.seals``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import ledger
import lockwatch
import pgbench
import sealcheck
from common import Server, alembic, database_revision, log, migrated, percentile

START = "0009_tally_watermark"
WARMUP_SECONDS = 3
TAIL_SECONDS = 3
STALL_SECONDS = 1.0
LOGGER = (
    "SELECT public.fn_dot_iu_command_log('dot_iu_add_piece', 'plan', 'planned', 'bench',"
    " '0123456789abcdef0123456789abcdef');\n"
)


def build(server: Server, dbname: str, rows: int) -> dict:
    migrated(server, dbname, START)
    with server.connect(dbname) as conn:
        log(f"upgrade: a ledger of {rows:,} rows at {START}")
        insert_seconds = ledger.grow(conn, ledger.command_names(conn), 0, rows)
        report = conn.execute(ledger.REBUILD).fetchone()[0]
        ledger.vacuum(conn, "dot_iu_command_run", "dot_iu_command_run_tally",
                      "dot_iu_command_run_tally_watermark")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"rows": rows, "insert_seconds": insert_seconds, "rebuild_report": report,
            "database_bytes": size}


def latencies(calls: list[pgbench.Call]) -> dict:
    if not calls:
        return {"calls": 0}
    ms = [call.latency * 1000 for call in calls]
    failed: dict[str, int] = {}
    for call in calls:
        if call.status != "ok":
            failed[call.status] = failed.get(call.status, 0) + 1
    return {
        "calls": len(calls),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
        "over_1s": sum(1 for value in ms if value > STALL_SECONDS * 1000),
        "failed": failed,
    }


def longest_pause(calls: list[pgbench.Call], start: float, end: float) -> float:
    """The longest stretch of [start, end] in which no call completed, seconds."""
    ends = sorted(call.end for call in calls if start <= call.end <= end)
    points = [start, *ends, end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def step(server: Server, dbname: str, revision: str, folder: Path) -> dict:
    script = folder / "logger.sql"
    script.write_text(LOGGER)
    logs = folder / revision
    logs.mkdir()
    clients = pgbench.Background(server, dbname, script, logs)
    time.sleep(WARMUP_SECONDS)
    watch = lockwatch.LockWatch(server.conninfo(dbname))
    began, error = time.time(), None
    try:
        alembic(server.url(dbname), "upgrade", revision)
    except RuntimeError as failure:
        error = " ".join(str(failure).split())[-600:]
    ended = time.time()
    waits = watch.stop()
    time.sleep(TAIL_SECONDS)
    clients.stop()
    calls = clients.calls()
    during = [call for call in calls if call.start < ended and call.end > began]
    before = [call for call in calls if call.end <= began]
    entry = {
        "revision": revision,
        "reached": database_revision(server, dbname),
        "upgrade_seconds": ended - began,
        "error": error,
        "during": latencies(during),
        "before": latencies(before),
        "longest_pause_s": longest_pause(calls, began, ended),
        "clients_aborted": clients.aborted(),
        "logger_errors": clients.errors(),
        "lock_waits": waits,
        "slowest": [
            {"latency_ms": call.latency * 1000, "status": call.status,
             "started_after_upgrade_began_s": call.start - began,
             "ended_after_upgrade_ended_s": call.end - ended}
            for call in sorted(during, key=lambda c: -c.latency)[:5]
        ],
    }
    d = entry["during"]
    log(
        f"upgrade: {revision}: {entry['upgrade_seconds']:.1f} s; loggers during it: "
        f"{d.get('calls', 0):,} calls, max {d.get('max_ms', 0):,.0f} ms, "
        f"p99 {d.get('p99_ms', 0):,.1f} ms, failed {d.get('failed', {})}"
        + (f"; FAILED: {error}" if error else "")
    )
    return entry


def run(server: Server, rows: int, steps: list[str]) -> dict:
    dbname = "bench_upgrade"
    results: dict = {"start": START, "clients": pgbench.CLIENTS, "threads": pgbench.THREADS,
                     "protocol": "simple", "logger_call": LOGGER.strip(),
                     "warmup_s": WARMUP_SECONDS, "tail_s": TAIL_SECONDS,
                     "stall_threshold_s": STALL_SECONDS, "steps": []}
    results["ledger"] = build(server, dbname, rows)
    with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as scratch:
        for revision in steps:
            log(f"upgrade: alembic upgrade {revision} with 4 loggers running")
            entry = step(server, dbname, revision, Path(scratch))
            results["steps"].append(entry)
            if entry["error"]:
                break
    with server.connect(dbname) as conn:
        results["ledger"]["rows_after"] = conn.execute(
            "SELECT count(*) FROM public.dot_iu_command_run").fetchone()[0]
        sealed = conn.execute(
            "SELECT to_regclass('public.dot_iu_ledger_seal') IS NOT NULL").fetchone()[0]
    if sealed:
        took, report = sealcheck.timed_section(server, dbname)
        results["seal_check_after"] = {
            "ok": report["ok"], "seconds": took, "rows_checked": report["rows_checked"],
            "run_links": report["ledgers"]["run"]["links"], "findings": report["findings"][:3],
            "summary": report["summary"],
        }
        with server.connect(dbname) as conn:
            results["seal_check_after"]["largest_link_rows"] = conn.execute(
                "SELECT coalesce(max(row_count), 0) FROM public.dot_iu_ledger_seal"
                " WHERE ledger = 'run' AND action = 'seal'").fetchone()[0]
    server.drop_database(dbname)
    return results
