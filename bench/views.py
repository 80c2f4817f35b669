"""Item 2: registry and health view latency against ledger size, v1 (old) against v2 (new).

One database at head. The v1 views are created beside the v2 ones under other names
(``bench_v1_registry``, ``bench_v1_health``) from the text 0003_operator_runtime created them
with, so old and new read the same rows. The ledger grows step by step to each size with
``INSERT ... SELECT generate_series`` (chunks of a million rows; the tally's row trigger is
disabled for the bulk load and the tally is then rebuilt by fn_dot_iu_command_run_tally_rebuild(),
timed: that is what the revision's backfill costs; the tables are then vacuumed and analyzed).
The rows look like the logger's: the 21 catalogued commands, a mix of the valid (mode, status)
pairs, the 9-gate snapshot, increasing created_at. The last 1,023 rows of each step go in with
the trigger enabled, in a REPEATABLE READ transaction (where no fold runs), so the views also
read 1,023 pending deltas: the most a fold every 1,024 writes leaves. At each size the two
versions must return identical rows; then each view is timed (``SELECT * ... fetchall()`` from a
client, the way a UI reads it), old and new interleaved, after one warm-up each.
"""

from __future__ import annotations

import importlib.util
import time

from common import PROJECT_ROOT, Server, alembic, alternate, log, summary
from throughput import SNAPSHOT

CHUNK = 1_000_000
PENDING = 1023
# (mode, status) with weights: mostly successful plan/apply/verify, some refusals and failures.
PAIRS = ([("plan", "planned")] * 6 + [("apply", "applied")] * 5 + [("verify", "verified")] * 4
         + [("apply", "refused")] * 2 + [("apply", "failed"), ("plan", "refused"),
                                         ("verify", "failed")])
VIEWS = {
    "registry": ("v_dot_iu_command_registry", "bench_v1_registry"),
    "health": ("v_dot_iu_command_run_health", "bench_v1_health"),
}
APPEND = """
INSERT INTO public.dot_iu_command_run
       (command_name, run_mode, run_status, mutating, actor, params_digest, gate_snapshot,
        evidence, created_at)
SELECT (%(names)s::text[])[1 + (i * 7919) %% %(n_names)s],
       (%(modes)s::text[])[1 + (i * 31) %% %(n_pairs)s],
       (%(statuses)s::text[])[1 + (i * 31) %% %(n_pairs)s],
       true, 'bench', md5(i::text), %(snapshot)s::jsonb, '{}'::jsonb,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 millisecond'
  FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS i"""


def v1_views() -> list[str]:
    """The v1 views' CREATE statements from 0003_operator_runtime, renamed for the bench."""
    path = PROJECT_ROOT / "alembic" / "versions" / "0003_operator_runtime.py"
    spec = importlib.util.spec_from_file_location("bench_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        module.REGISTRY_VIEW_V1.replace("public.v_dot_iu_command_registry",
                                        "public.bench_v1_registry"),
        module.HEALTH_VIEW_V1.replace("public.v_dot_iu_command_run_health",
                                      "public.bench_v1_health"),
    ]


def append(conn, names: list[str], low: int, high: int) -> None:
    conn.execute(APPEND, {
        "names": names, "n_names": len(names),
        "modes": [m for m, _ in PAIRS], "statuses": [s for _, s in PAIRS],
        "n_pairs": len(PAIRS), "snapshot": SNAPSHOT, "low": low, "high": high,
    })


def grow(conn, names: list[str], have: int, want: int) -> float:
    """Bulk-append rows have+1 .. want with the tally's row trigger disabled."""
    start = time.perf_counter()
    conn.execute("ALTER TABLE public.dot_iu_command_run "
                 "DISABLE TRIGGER tg_dot_iu_command_run_tally_insert")
    for low in range(have + 1, want + 1, CHUNK):
        append(conn, names, low, min(low + CHUNK - 1, want))
    conn.execute("ALTER TABLE public.dot_iu_command_run "
                 "ENABLE TRIGGER tg_dot_iu_command_run_tally_insert")
    return time.perf_counter() - start


def run(server: Server, sizes: list[int], runs: int) -> dict:
    dbname = "bench_views"
    server.create_database(dbname)
    alembic(server.url(dbname), "upgrade", "head")
    results: dict = {"runs": runs, "pending_deltas": PENDING, "sizes": []}
    with server.connect(dbname) as conn:
        for statement in v1_views():
            conn.execute(statement)
        names = [row[0] for row in conn.execute(
            "SELECT command_name FROM public.dot_iu_command_catalog ORDER BY 1")]
        have = 0
        for size in sorted(sizes):
            log(f"views: growing the ledger to {size:,} rows")
            tail = min(PENDING, size - have)
            insert_seconds = grow(conn, names, have, size - tail)
            start = time.perf_counter()
            report = conn.execute(
                "SELECT public.fn_dot_iu_command_run_tally_rebuild()").fetchone()[0]
            rebuild_seconds = time.perf_counter() - start
            assert report["runs"] == size - tail, report
            for table in ("dot_iu_command_run", "dot_iu_command_run_tally",
                          "dot_iu_command_run_tally_delta"):
                conn.execute(f"VACUUM ANALYZE public.{table}")
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                append(conn, names, size - tail + 1, size)
            have = size
            tally_rows = conn.execute(
                "SELECT count(*) FROM public.dot_iu_command_run_tally").fetchone()[0]
            pending = conn.execute(
                "SELECT count(*) FROM public.dot_iu_command_run_tally_delta").fetchone()[0]
            exact = all(
                conn.execute(f"SELECT * FROM public.{new} ORDER BY 1").fetchall()
                == conn.execute(f"SELECT * FROM public.{old} ORDER BY 1").fetchall()
                for new, old in VIEWS.values())
            if not exact:
                raise AssertionError(f"v2 and v1 views disagree at {size} rows")
            log(f"views: timing at {size:,} rows ({runs} runs each, interleaved)")
            actions = {}
            for view, (new, old) in VIEWS.items():
                actions[f"{view} v2"] = (
                    lambda v=new: conn.execute(f"SELECT * FROM public.{v}").fetchall())
                actions[f"{view} v1"] = (
                    lambda v=old: conn.execute(f"SELECT * FROM public.{v}").fetchall())
            seconds = alternate(actions, runs)
            entry = {"rows": size, "insert_seconds": insert_seconds,
                     "rebuild_seconds": rebuild_seconds, "tally_rows": tally_rows,
                     "pending_deltas": pending, "exact": exact}
            for view in VIEWS:
                new = summary([s * 1000 for s in seconds[f"{view} v2"]])
                old = summary([s * 1000 for s in seconds[f"{view} v1"]])
                entry[view] = {"v2_ms": new, "v1_ms": old, "speedup_p50": old["p50"] / new["p50"]}
            results["sizes"].append(entry)
            log(f"views: {size:,} rows: registry v2 {entry['registry']['v2_ms']['p50']:.2f} ms,"
                f" v1 {entry['registry']['v1_ms']['p50']:.1f} ms; health v2"
                f" {entry['health']['v2_ms']['p50']:.2f} ms,"
                f" v1 {entry['health']['v1_ms']['p50']:.1f} ms")
        database_bytes = conn.execute(
            "SELECT pg_database_size(current_database())").fetchone()[0]
    results["database_bytes"] = database_bytes
    sizes_done = results["sizes"]
    if len(sizes_done) > 1:
        first, last = sizes_done[0], sizes_done[-1]
        results["growth"] = {
            "from_rows": first["rows"], "to_rows": last["rows"],
            **{f"{view}_v2_p50_ratio": last[view]["v2_ms"]["p50"] / first[view]["v2_ms"]["p50"]
               for view in VIEWS},
            **{f"{view}_v1_p50_ratio": last[view]["v1_ms"]["p50"] / first[view]["v1_ms"]["p50"]
               for view in VIEWS},
        }
    server.drop_database(dbname)
    return results
