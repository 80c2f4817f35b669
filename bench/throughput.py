"""Item 1: the logger against a plain INSERT of the same row, at head and at the revisions before.

Three databases on the bench server: ``head`` (logger v3: no tally trigger, the gate snapshot
read from one row, a watermark fold on about one run in 1024), ``0008`` at 0008_run_tally
(logger v2 and the per-row tally trigger) and ``0007`` at 0007_runtime_reader_v2 (logger v1, no
tally). In the head database the bench also creates ``bench_minimal_log(text)``, the yardstick
the issue quotes: a minimal plpgsql logger (the vocabulary check, then the insert). pgbench (the
server's own, 4 clients, 2 threads) runs custom scripts, each variant for the same number of
seconds, rotated within every round and repeated over rounds; each ledger is emptied before each
run. The baseline is a plain INSERT into the head ledger of the row the logger writes (the same
values, the 9-gate snapshot included): what writing the row costs without the logger's lookups.
A ratio is the variant's tps over the baseline's tps in the same round; the figure is the median
ratio.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from common import Server, log, median, migrated, revisions

DIGEST = "0123456789abcdef0123456789abcdef"
GATES = (
    "iu_core.composer_enabled",
    "iu_core.structure_ops_enabled",
    "iu_core.delivery_enabled",
    "iu_core.three_axis_auto_refresh_enabled",
    "queue.job_substrate.enabled",
    "queue.dlq.replay_enabled",
    "iu_enact.allow_no_review_decision",
    "iu_core.vector_sync_enabled",
    "iu_core.operator_runtime_enabled",
)
SNAPSHOT = json.dumps({key: "false" for key in sorted(GATES)})
FOUR_COMMANDS = (
    "ARRAY['dot_iu_add_piece', 'dot_iu_healthcheck', 'dot_iu_route_deliver', 'dot_iu_split_piece']"
)
WORKLOADS = {
    "same command": "'dot_iu_add_piece'",
    "different commands": f"({FOUR_COMMANDS})[:client_id % 4 + 1]",
}
# Each database (its key in VARIANTS) and the revision it is upgraded to ("head" resolved).
DATABASES = {"head": "head", "0008": "0008_run_tally", "0007": "0007_runtime_reader_v2"}
BASELINE = "plain INSERT, head"
# (label, database, statement kind); the first is the baseline.
VARIANTS = (
    (BASELINE, "head", "insert"),
    ("logger v3, head", "head", "logger"),
    ("minimal plpgsql logger, head", "head", "minimal"),
    ("logger v2 + per-row tally, 0008", "0008", "logger"),
    ("logger v1, 0007", "0007", "logger"),
)
GOAL = "logger v3, head"
YARDSTICK = "minimal plpgsql logger, head"
TPS = re.compile(r"^tps = ([0-9.]+) \((?:without|excluding)", re.MULTILINE)


def statement(kind: str, command: str) -> str:
    if kind == "logger":
        return (
            f"SELECT public.fn_dot_iu_command_log({command}, 'apply', 'applied', 'bench', "
            f"'{DIGEST}');\n"
        )
    if kind == "minimal":
        return f"SELECT public.bench_minimal_log({command});\n"
    return (
        "INSERT INTO public.dot_iu_command_run (command_name, run_mode, run_status, mutating,"
        f" actor, params_digest, gate_snapshot) VALUES ({command}, 'apply', 'applied', true,"
        f" 'bench', '{DIGEST}', '{SNAPSHOT}');\n"
    )


# The yardstick: the vocabulary check and the baseline's insert (same row, same literal
# snapshot), with the logger's function attributes.
MINIMAL_LOGGER = f"""
CREATE FUNCTION public.bench_minimal_log(p_command text)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_mutating boolean;
    v_run_id bigint;
BEGIN
    SELECT c.mutating INTO v_mutating
      FROM public.dot_iu_command_catalog AS c
     WHERE c.command_name = p_command;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'command % is not in the command catalog', p_command
            USING ERRCODE = '23503';
    END IF;
    INSERT INTO public.dot_iu_command_run
           (command_name, run_mode, run_status, mutating, actor, params_digest, gate_snapshot)
    VALUES (p_command, 'apply', 'applied', v_mutating, 'bench', '{DIGEST}', '{SNAPSHOT}')
    RETURNING run_id INTO v_run_id;
    RETURN v_run_id;
END
$function$"""


def same_rows(server: Server, databases: dict[str, str], command: str) -> None:
    """Every variant writes the same row (but run_id and created_at), or the ratios lie."""
    rows = {}
    columns = (
        "command_name, run_mode, run_status, mutating, actor, params_digest, "
        "gate_snapshot, evidence"
    )
    for label, database, kind in VARIANTS:
        dbname = databases[database]
        empty_ledger(server, dbname)
        with server.connect(dbname) as conn:
            conn.execute(statement(kind, command))
            rows[label] = conn.execute(
                f"SELECT {columns} FROM public.dot_iu_command_run"
            ).fetchall()
        empty_ledger(server, dbname)
    if any(found != rows[BASELINE] for found in rows.values()):
        raise AssertionError(f"the variants write different rows: {rows}")


def empty_ledger(server: Server, dbname: str) -> None:
    with server.connect(dbname, autocommit=False) as conn:
        conn.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")
        conn.execute("TRUNCATE public.dot_iu_command_run, public.iu_gate_transition")
        conn.commit()


def pgbench(server: Server, dbname: str, script: Path, seconds: int, mode: str) -> float:
    result = subprocess.run(
        [
            server.tool("pgbench"),
            "-n",
            "-c",
            "4",
            "-j",
            "2",
            "-T",
            str(seconds),
            "-M",
            mode,
            "-f",
            str(script),
            server.conninfo(dbname),
        ],
        capture_output=True,
        text=True,
    )
    found = TPS.search(result.stdout)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"pgbench {script.name}: {result.stdout}{result.stderr}")
    return float(found.group(1))


def run(server: Server, rounds: int, seconds: int, modes: list[str]) -> dict:
    resolved = revisions(*DATABASES.values())
    databases = {key: f"bench_{key}" for key in DATABASES}
    at = {key: migrated(server, databases[key], resolved[DATABASES[key]]) for key in DATABASES}
    with server.connect(databases["head"]) as conn:
        conn.execute(MINIMAL_LOGGER)
    same_rows(server, databases, WORKLOADS["same command"])
    results: dict = {
        "clients": 4,
        "threads": 2,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "revisions": at,
        "baseline": BASELINE,
        "goal": GOAL,
        "yardstick": YARDSTICK,
        "variants": {
            label: {"database": database, "revision": at[database], "statement": kind}
            for label, database, kind in VARIANTS
        },
        "workloads": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-scripts-") as scratch:
        for workload, command in WORKLOADS.items():
            scripts = {}
            for kind in ("insert", "logger", "minimal"):
                scripts[kind] = Path(scratch) / f"{kind}-{workload.replace(' ', '-')}.sql"
                scripts[kind].write_text(statement(kind, command))
            for mode in modes:
                log(
                    f"throughput: {workload}, -M {mode}, {rounds} round(s) x "
                    f"{len(VARIANTS)} variant(s) x {seconds}s"
                )
                tps: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
                ratios: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
                for number in range(rounds):
                    shift = number % len(VARIANTS)
                    order = VARIANTS[shift:] + VARIANTS[:shift]
                    this_round = {}
                    for label, database, kind in order:
                        empty_ledger(server, databases[database])
                        this_round[label] = pgbench(
                            server, databases[database], scripts[kind], seconds, mode
                        )
                    for label in this_round:
                        tps[label].append(this_round[label])
                        ratios[label].append(this_round[label] / this_round[BASELINE])
                results["workloads"].setdefault(workload, {})[mode] = {
                    label: {
                        "tps": tps[label],
                        "ratios": ratios[label],
                        "tps_p50": median(tps[label]),
                        "ratio_p50": median(ratios[label]),
                    }
                    for label, _, _ in VARIANTS
                }
    for dbname in databases.values():
        server.drop_database(dbname)
    return results
