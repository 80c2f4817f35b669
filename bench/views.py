"""Item 2: registry and health view latency against ledger size, v1 (old) against head (new).

One database at head. The v1 views are created beside the head ones under other names
(``bench_v1_registry``, ``bench_v1_health``) from the text 0003_operator_runtime created them
with, so old and new read the same rows. The ledger grows step by step to each size with
``INSERT ... SELECT generate_series`` (chunks of a million rows; at head a plain INSERT writes
nothing for the tally). The rows look like the logger's: the 21 catalogued commands, a mix of
the valid (mode, status) pairs, the 9-gate snapshot, increasing created_at. At each size the
ledger first grows to all but its last 1,500 rows; fn_dot_iu_command_run_tally_rebuild() then
recounts the tally and puts its watermark at the last of them (timed: what a full recount
costs) and the tables are vacuumed and analyzed; the last 1,500 rows go in after that, with no
fold, so the head views also count 1,500 rows past the watermark from the ledger: about what
the logger's folds leave in steady state (between 1,024 and 2,048 rows: a fold on about one run
in 1024 promotes the candidate the fold before it recorded). At each size the two versions must
return identical rows; then each view is timed (``SELECT * ... fetchall()`` from a client, the
way a UI reads it), old and new interleaved, after one warm-up each.
"""

from __future__ import annotations

import importlib.util
import time

from common import PROJECT_ROOT, Server, alternate, log, migrated, revisions, summary
from throughput import SNAPSHOT

CHUNK = 1_000_000
# Rows left past the watermark at each size (all of them in a smaller ledger).
TAIL = 1500
REBUILD = "SELECT public.fn_dot_iu_command_run_tally_rebuild()"
# (mode, status) with weights: mostly successful plan/apply/verify, some refusals and failures.
PAIRS = (
    [("plan", "planned")] * 6
    + [("apply", "applied")] * 5
    + [("verify", "verified")] * 4
    + [("apply", "refused")] * 2
    + [("apply", "failed"), ("plan", "refused"), ("verify", "failed")]
)
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
        module.REGISTRY_VIEW_V1.replace(
            "public.v_dot_iu_command_registry", "public.bench_v1_registry"
        ),
        module.HEALTH_VIEW_V1.replace(
            "public.v_dot_iu_command_run_health", "public.bench_v1_health"
        ),
    ]


def append(conn, names: list[str], low: int, high: int) -> None:
    conn.execute(
        APPEND,
        {
            "names": names,
            "n_names": len(names),
            "modes": [m for m, _ in PAIRS],
            "statuses": [s for _, s in PAIRS],
            "n_pairs": len(PAIRS),
            "snapshot": SNAPSHOT,
            "low": low,
            "high": high,
        },
    )


def grow(conn, names: list[str], have: int, want: int) -> float:
    """Bulk-append rows have+1 .. want (at head no trigger writes anything for the tally)."""
    start = time.perf_counter()
    for low in range(have + 1, want + 1, CHUNK):
        append(conn, names, low, min(low + CHUNK - 1, want))
    return time.perf_counter() - start


def run(server: Server, sizes: list[int], runs: int) -> dict:
    dbname = "bench_views"
    head = revisions("head")["head"]
    revision = migrated(server, dbname, head)
    results: dict = {"runs": runs, "revision": revision, "tail": TAIL, "sizes": []}
    with server.connect(dbname) as conn:
        for statement in v1_views():
            conn.execute(statement)
        names = [
            row[0]
            for row in conn.execute(
                "SELECT command_name FROM public.dot_iu_command_catalog ORDER BY 1"
            )
        ]
        have = 0
        for size in sorted(sizes):
            log(f"views: growing the ledger to {size:,} rows")
            below = max(have, size - TAIL)
            insert_seconds = grow(conn, names, have, below)
            start = time.perf_counter()
            report = conn.execute(REBUILD).fetchone()[0]
            rebuild_seconds = time.perf_counter() - start
            assert report["runs"] == below, report
            for table in (
                "dot_iu_command_run",
                "dot_iu_command_run_tally",
                "dot_iu_command_run_tally_watermark",
            ):
                conn.execute(f"VACUUM ANALYZE public.{table}")
            append(conn, names, below + 1, size)
            have = size
            tally_rows = conn.execute(
                "SELECT count(*) FROM public.dot_iu_command_run_tally"
            ).fetchone()[0]
            folded_through, past = conn.execute(
                "SELECT w.folded_through, (SELECT count(*) FROM public.dot_iu_command_run AS run"
                "                          WHERE run.run_id > w.folded_through)"
                "  FROM public.dot_iu_command_run_tally_watermark AS w"
            ).fetchone()
            assert past == size - below, (size, folded_through, past)
            exact = all(
                conn.execute(f"SELECT * FROM public.{new} ORDER BY 1").fetchall()
                == conn.execute(f"SELECT * FROM public.{old} ORDER BY 1").fetchall()
                for new, old in VIEWS.values()
            )
            if not exact:
                raise AssertionError(f"head and v1 views disagree at {size} rows")
            log(f"views: timing at {size:,} rows ({runs} runs each, interleaved)")
            actions = {}
            for view, (new, old) in VIEWS.items():
                actions[f"{view} head"] = lambda v=new: conn.execute(
                    f"SELECT * FROM public.{v}"
                ).fetchall()
                actions[f"{view} v1"] = lambda v=old: conn.execute(
                    f"SELECT * FROM public.{v}"
                ).fetchall()
            seconds = alternate(actions, runs)
            entry = {
                "rows": size,
                "insert_seconds": insert_seconds,
                "rebuild_seconds": rebuild_seconds,
                "rebuild_report": report,
                "tally_rows": tally_rows,
                "folded_through": folded_through,
                "rows_past_watermark": past,
                "exact": exact,
            }
            for view in VIEWS:
                new = summary([s * 1000 for s in seconds[f"{view} head"]])
                old = summary([s * 1000 for s in seconds[f"{view} v1"]])
                entry[view] = {"head_ms": new, "v1_ms": old, "speedup_p50": old["p50"] / new["p50"]}
            results["sizes"].append(entry)
            log(
                f"views: {size:,} rows: registry head {entry['registry']['head_ms']['p50']:.2f}"
                f" ms, v1 {entry['registry']['v1_ms']['p50']:.1f} ms; health head"
                f" {entry['health']['head_ms']['p50']:.2f} ms,"
                f" v1 {entry['health']['v1_ms']['p50']:.1f} ms"
            )
        database_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    results["database_bytes"] = database_bytes
    sizes_done = results["sizes"]
    if len(sizes_done) > 1:
        first, last = sizes_done[0], sizes_done[-1]
        results["growth"] = {
            "from_rows": first["rows"],
            "to_rows": last["rows"],
            **{
                f"{view}_head_p50_ratio": last[view]["head_ms"]["p50"]
                / first[view]["head_ms"]["p50"]
                for view in VIEWS
            },
            **{
                f"{view}_v1_p50_ratio": last[view]["v1_ms"]["p50"] / first[view]["v1_ms"]["p50"]
                for view in VIEWS
            },
        }
    server.drop_database(dbname)
    return results
