"""Item 1: the logger (with the tally it maintains) against a plain INSERT of the same row.

Two databases on the bench server: ``before`` at the revision before 0008_run_tally (logger v1,
no tally) and ``after`` at head. pgbench (the server's own, 4 clients, 2 threads) runs custom
scripts, each variant for the same number of seconds, rotated within every round and repeated
over rounds; each ledger is emptied before each run. The baseline is a plain INSERT into the
``before`` ledger of the row the logger writes (the same values, the 9-gate snapshot included):
what writing the row costs without the logger's lookups and without any tally. A ratio is the
variant's tps over the baseline's tps in the same round; the figure is the median ratio.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from common import Server, alembic, log, median, tally_revision

DIGEST = "0123456789abcdef0123456789abcdef"
GATES = (
    "iu_core.composer_enabled", "iu_core.structure_ops_enabled", "iu_core.delivery_enabled",
    "iu_core.three_axis_auto_refresh_enabled", "queue.job_substrate.enabled",
    "queue.dlq.replay_enabled", "iu_enact.allow_no_review_decision",
    "iu_core.vector_sync_enabled", "iu_core.operator_runtime_enabled",
)
SNAPSHOT = json.dumps({key: "false" for key in sorted(GATES)})
FOUR_COMMANDS = ("ARRAY['dot_iu_add_piece', 'dot_iu_healthcheck', 'dot_iu_route_deliver', "
                 "'dot_iu_split_piece']")
WORKLOADS = {
    "same command": "'dot_iu_add_piece'",
    "different commands": f"({FOUR_COMMANDS})[:client_id % 4 + 1]",
}
BASELINE = "plain INSERT, before"
# (label, database, statement kind); the first is the baseline.
VARIANTS = (
    (BASELINE, "before", "insert"),
    ("logger v1, before", "before", "logger"),
    ("logger v2 + tally, after", "after", "logger"),
    ("plain INSERT + tally trigger, after", "after", "insert"),
)
GOAL = "logger v2 + tally, after"
TPS = re.compile(r"^tps = ([0-9.]+) \((?:without|excluding)", re.MULTILINE)


def statement(kind: str, command: str) -> str:
    if kind == "logger":
        return (f"SELECT public.fn_dot_iu_command_log({command}, 'apply', 'applied', 'bench', "
                f"'{DIGEST}');\n")
    return ("INSERT INTO public.dot_iu_command_run (command_name, run_mode, run_status, mutating,"
            f" actor, params_digest, gate_snapshot) VALUES ({command}, 'apply', 'applied', true,"
            f" 'bench', '{DIGEST}', '{SNAPSHOT}');\n")


def empty_ledger(server: Server, dbname: str) -> None:
    with server.connect(dbname, autocommit=False) as conn:
        conn.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")
        conn.execute("TRUNCATE public.dot_iu_command_run, public.iu_gate_transition")
        conn.commit()


def pgbench(server: Server, dbname: str, script: Path, seconds: int, mode: str) -> float:
    result = subprocess.run(
        [server.tool("pgbench"), "-n", "-c", "4", "-j", "2", "-T", str(seconds), "-M", mode,
         "-f", str(script), "-d", server.conninfo(dbname)],
        capture_output=True, text=True)
    found = TPS.search(result.stdout)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"pgbench {script.name}: {result.stdout}{result.stderr}")
    return float(found.group(1))


def run(server: Server, rounds: int, seconds: int, modes: list[str]) -> dict:
    after_rev, before_rev = tally_revision()
    databases = {"before": "bench_before", "after": "bench_after"}
    for name, dbname in databases.items():
        server.create_database(dbname)
        alembic(server.url(dbname), "upgrade", before_rev if name == "before" else "head")
    results: dict = {
        "clients": 4, "threads": 2, "seconds_per_run": seconds, "rounds": rounds,
        "before": before_rev, "after": after_rev, "baseline": BASELINE, "goal": GOAL,
        "workloads": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-scripts-") as scratch:
        for workload, command in WORKLOADS.items():
            scripts = {}
            for kind in ("insert", "logger"):
                scripts[kind] = Path(scratch) / f"{kind}-{workload.replace(' ', '-')}.sql"
                scripts[kind].write_text(statement(kind, command))
            for mode in modes:
                log(f"throughput: {workload}, -M {mode}, {rounds} round(s) x "
                    f"{len(VARIANTS)} variant(s) x {seconds}s")
                tps: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
                ratios: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
                for number in range(rounds):
                    shift = number % len(VARIANTS)
                    order = VARIANTS[shift:] + VARIANTS[:shift]
                    this_round = {}
                    for label, database, kind in order:
                        empty_ledger(server, databases[database])
                        this_round[label] = pgbench(server, databases[database], scripts[kind],
                                                    seconds, mode)
                    for label in this_round:
                        tps[label].append(this_round[label])
                        ratios[label].append(this_round[label] / this_round[BASELINE])
                results["workloads"].setdefault(workload, {})[mode] = {
                    label: {"tps": tps[label], "ratios": ratios[label],
                            "tps_p50": median(tps[label]), "ratio_p50": median(ratios[label])}
                    for label, _, _ in VARIANTS
                }
    for dbname in databases.values():
        server.drop_database(dbname)
    return results
