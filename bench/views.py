"""Item 2: registry and health view latency against ledger size, v1 (old) against head (new).

The ledger is the one ``growing.GrowingLedger`` builds at head (bulk rows, sealed as the folds
seal them, the tally rebuilt, 1,500 rows left past the watermark). The v1 views are created
beside the head ones under other names (``bench_v1_registry``, ``bench_v1_health``) from the
text 0003_operator_runtime created them with, so old and new read the same rows. At each size
the two versions must return identical rows; then each view is timed (``SELECT * ...
fetchall()`` from a client, the way a UI reads it), old and new interleaved, after one warm-up
each.
"""

from __future__ import annotations

import importlib.util

from common import PROJECT_ROOT, alternate, log, summary

VIEWS = {
    "registry": ("v_dot_iu_command_registry", "bench_v1_registry"),
    "health": ("v_dot_iu_command_run_health", "bench_v1_health"),
}


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


def setup(conn) -> None:
    for statement in v1_views():
        conn.execute(statement)


def measure(conn, grown: dict, runs: int) -> dict:
    """Both versions at the ledger's current size (``grown``: what growing.grow_to said)."""
    size = grown["rows"]
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
        actions[f"{view} head"] = lambda v=new: conn.execute(f"SELECT * FROM public.{v}").fetchall()
        actions[f"{view} v1"] = lambda v=old: conn.execute(f"SELECT * FROM public.{v}").fetchall()
    seconds = alternate(actions, runs)
    entry = {**grown, "exact": exact}
    for view in VIEWS:
        new = summary([s * 1000 for s in seconds[f"{view} head"]])
        old = summary([s * 1000 for s in seconds[f"{view} v1"]])
        entry[view] = {"head_ms": new, "v1_ms": old, "speedup_p50": old["p50"] / new["p50"]}
    log(
        f"views: {size:,} rows: registry head {entry['registry']['head_ms']['p50']:.2f}"
        f" ms, v1 {entry['registry']['v1_ms']['p50']:.1f} ms; health head"
        f" {entry['health']['head_ms']['p50']:.2f} ms,"
        f" v1 {entry['health']['v1_ms']['p50']:.1f} ms"
    )
    return entry


def growth(sizes: list[dict]) -> dict | None:
    """How the p50s change from the smallest ledger to the largest."""
    if len(sizes) < 2:
        return None
    first, last = sizes[0], sizes[-1]
    return {
        "from_rows": first["rows"],
        "to_rows": last["rows"],
        **{
            f"{view}_head_p50_ratio": last[view]["head_ms"]["p50"] / first[view]["head_ms"]["p50"]
            for view in VIEWS
        },
        **{
            f"{view}_v1_p50_ratio": last[view]["v1_ms"]["p50"] / first[view]["v1_ms"]["p50"]
            for view in VIEWS
        },
    }
