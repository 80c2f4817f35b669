"""Item 8: a gate reader with a live window, at head against the reader as released before 0011.

One database at head; the composer gate is opened through the gate protocol (a live window).
The reader as released before 0011 (``fn_iu_composer_enabled`` v1: the dot_config value
alone) is created beside head's from its own file under another name,
``bench_v1_composer_enabled()``; head's (v2) reads the value and the gate's latest transition
through ``fn_iu_gate_state``. Both must read open. Two figures, the versions interleaved in
the same run:

- from a client: one ``SELECT reader()`` per call, as an application asks, the two readers
  alternating call by call; p50 and p95 of every call's latency (psycopg prepares a statement
  it has run five times, so this is the prepared path);
- in the server: one statement calling the reader ``LOOP`` times (``count(*) FILTER (WHERE
  reader()) FROM generate_series``: a SECURITY DEFINER function is never inlined, so it runs
  every time); microseconds per call, median over the runs.
"""

from __future__ import annotations

import time

import gate_windows
from common import PROJECT_ROOT, Server, log, median, migrated, revisions, summary

GATE = "iu_core.composer_enabled"
READERS = {
    "head": "public.fn_iu_composer_enabled()",
    "v1 (before 0011)": "public.bench_v1_composer_enabled()",
}
LOOP = 20_000
WARMUP = 200


def v1_reader() -> str:
    text = (PROJECT_ROOT / "sql_functions" / "fn_iu_composer_enabled.v1.sql").read_text()
    return text.replace("public.fn_iu_composer_enabled()", "public.bench_v1_composer_enabled()")


def client_calls(conn, calls: int) -> dict[str, list[float]]:
    statements = {name: f"SELECT {reader}" for name, reader in READERS.items()}
    for statement in statements.values():
        for _ in range(WARMUP):
            conn.execute(statement).fetchone()
    seconds: dict[str, list[float]] = {name: [] for name in statements}
    names = list(statements)
    for number in range(calls):
        for name in names if number % 2 == 0 else reversed(names):
            start = time.perf_counter()
            conn.execute(statements[name]).fetchone()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def server_loops(conn, runs: int) -> dict[str, list[float]]:
    us: dict[str, list[float]] = {name: [] for name in READERS}
    names = list(READERS)
    for number in range(runs + 1):
        for name in names if number % 2 == 0 else reversed(names):
            start = time.perf_counter()
            conn.execute(
                f"SELECT count(*) FILTER (WHERE {READERS[name]}) FROM generate_series(1, {LOOP})"
            ).fetchone()
            if number:  # the first run warms up
                us[name].append((time.perf_counter() - start) * 1e6 / LOOP)
    return us


def run(server: Server, calls: int, runs: int = 7) -> dict:
    dbname = "bench_readers"
    revision = migrated(server, dbname, revisions("head")["head"])
    with server.connect(dbname) as conn:
        conn.execute(v1_reader())
        gate_windows.open_gates(conn, [GATE])
        reads = {name: conn.execute(f"SELECT {reader}").fetchone()[0]
                 for name, reader in READERS.items()}
        if not all(reads.values()):
            raise AssertionError(f"a reader reads the open gate shut: {reads}")
        log(f"readers: {calls} client calls of each reader, interleaved")
        client = client_calls(conn, calls)
        log(f"readers: {runs} server loops of {LOOP:,} calls each")
        loops = server_loops(conn, runs)
        gate_windows.close_gates(conn, [GATE])
    server.drop_database(dbname)
    results: dict = {"revision": revision, "gate": GATE, "calls": calls, "loop": LOOP,
                     "runs": runs, "readers": READERS, "client_ms": {}, "server_us": {}}
    for name in READERS:
        results["client_ms"][name] = summary([s * 1000 for s in client[name]])
        results["server_us"][name] = {"per_call_p50": median(loops[name]), "runs": loops[name]}
    head, old = READERS
    results["client_ratio_p50"] = (results["client_ms"][head]["p50"]
                                   / results["client_ms"][old]["p50"])
    results["client_ratio_p95"] = (results["client_ms"][head]["p95"]
                                   / results["client_ms"][old]["p95"])
    results["server_ratio_p50"] = (results["server_us"][head]["per_call_p50"]
                                   / results["server_us"][old]["per_call_p50"])
    return results
