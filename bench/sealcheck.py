"""Item 7: a full seal verification at head, at each ledger size, timed.

On the ledger ``growing.GrowingLedger`` builds (sealed in links of 1,024 ids, as the folds seal
them, plus 1,500 rows past the sealed frontier), ``substrate.review.verify.seals.section`` runs
the way ``substrate verify`` calls it: on a fresh connection, with a connection factory and two
workers that recompute the ranges in parallel. Each run must find nothing. Reported: seconds
(p50 over the runs) and sealed rows checked per second. Where the time goes: ``EXPLAIN
(ANALYZE, BUFFERS)`` of the section's range query over a sample of links (one worker's query
on fewer links), giving the server's cost per link and per row. Then ``substrate verify``
end to end, once: its wall time, exit code and whether its report has a seals section.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import psycopg
from common import Server, log, summary
from tooling import SUBSTRATE

from substrate.review.verify import seals

WORKERS = 2
SAMPLE_LINKS = 200
EXECUTION = re.compile(r"Execution Time: ([0-9.]+) ms")


def timed_section(server: Server, dbname: str) -> tuple[float, dict]:
    def connect():
        return psycopg.connect(server.conninfo(dbname))

    with connect() as conn:
        start = time.perf_counter()
        report = seals.section(conn, connect=connect, workers=WORKERS)
        return time.perf_counter() - start, report


def explain(conn, links: int) -> dict:
    """The range query over an even sample of the run chain's links, EXPLAIN ANALYZE'd."""
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT seal_id FROM (SELECT seal_id, row_number() OVER (ORDER BY seal_id) AS n,"
            " count(*) OVER () AS total FROM public.dot_iu_ledger_seal"
            " WHERE ledger = 'run' AND action = 'seal') AS s"
            " WHERE n %% greatest(1, total / %s) = 0 LIMIT %s",
            (links, links),
        )
    ]
    table, key = seals.LEDGERS["run"]
    query = seals._ranges_sql(table, key).replace("%s", f"ARRAY{ids}::bigint[]")
    with conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        plan = [row[0] for row in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query)]
    rows = int(conn.execute(
        "SELECT coalesce(sum(row_count), 0) FROM public.dot_iu_ledger_seal"
        " WHERE seal_id = ANY (%s)",
        (ids,),
    ).fetchone()[0])
    ms = float(EXECUTION.search("\n".join(plan)).group(1))
    return {
        "links": len(ids),
        "rows": rows,
        "execution_ms": ms,
        "ms_per_link": ms / max(1, len(ids)),
        "us_per_row": ms * 1000 / max(1, rows),
        "plan": plan,
    }


def verify_cli(server: Server, dbname: str) -> dict:
    """``substrate verify --json`` once: wall time, exit code, the seals section's summary and
    the findings or errors of any section that is not ok."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(SUBSTRATE), "verify", "--json", "--url", server.url(dbname)],
        capture_output=True, text=True,
    )
    seconds = time.perf_counter() - start
    try:
        sections = json.loads(done.stdout)["sections"]
    except (ValueError, KeyError):
        sections = {}
    return {
        "seconds": seconds,
        "exit_code": done.returncode,
        "has_seals_section": "seals" in sections,
        "seals_summary": sections.get("seals", {}).get("summary"),
        "not_ok": {
            name: section.get("error") or section.get("findings", [])[:3]
            for name, section in sections.items()
            if section.get("error") or not section.get("ok", True)
        },
        "stderr": done.stderr.strip()[-500:],
    }


def measure(server: Server, dbname: str, conn, rows: int, runs: int) -> dict:
    log(f"seals: verifying {rows:,} rows ({runs} run(s), {WORKERS} workers)")
    seconds, report = [], None
    for _ in range(runs):
        took, report = timed_section(server, dbname)
        if not report["ok"]:
            raise AssertionError(f"seal check found something at {rows} rows: {report}")
        seconds.append(took)
    timing = summary(seconds)
    checked = report["rows_checked"]
    links = report["ledgers"]["run"]["links"]
    entry = {
        "rows": rows,
        "workers": WORKERS,
        "seconds": timing,
        "rows_checked": checked,
        "rows_per_second_p50": checked / timing["p50"],
        "run_links": links,
        "ms_per_link_p50": timing["p50"] * 1000 / max(1, links),
        "rows_past_frontier": report["ledgers"]["run"]["rows_past_frontier"],
        "summary": report["summary"],
        "explain": explain(conn, SAMPLE_LINKS),
        "substrate_verify": verify_cli(server, dbname),
    }
    log(
        f"seals: {rows:,} rows: {timing['p50']:.1f} s p50, "
        f"{entry['rows_per_second_p50']:,.0f} rows/s, {links:,} links"
    )
    return entry
