"""Item 1: the logger against a plain INSERT of the same row, at head and as released at 0009.

Two databases on the bench server: ``head`` and ``0009`` (at 0009_tally_watermark, logger v3).
pgbench (the server's own, 4 clients, 2 threads) runs custom scripts, each variant for the same
number of seconds, rotated within every round and repeated over rounds; each ledger is emptied
before each run. Two kinds of row: in the 'applied' workloads every call writes an 'applied'
row in mode apply, so at head the logger holds the gates and checks its gate rule on every call
(the worst case: in production the runtime's lease lets one applier write such rows at a time);
in the 'verify' workload every call writes a 'verified' row in mode verify, the logger's
ordinary row (every input rule, the live snapshot, the fold and its seal, no gate hold). The
gates the commands need (the runtime gate and their required_gates) are opened through the gate
protocol before each run, so each run starts with a fresh window. The baseline is a plain
INSERT into the head ledger of the row the logger writes: the same values, the session_login
column's default, and the live gate snapshot as a literal. In the head database the bench also
creates ``bench_minimal_log(text, text, text)``, the yardstick: a minimal plpgsql logger (the
vocabulary check, then the baseline's insert), created by the owner role as the logger is.
Sealing is on: the logger folds on about one run in 1024 and each fold seals what it moves;
each head logger run records how many seal links it made and how many of its rows they sealed.
The ledger is emptied with RESTART IDENTITY, so run ids and the tally's watermark (which the
truncate trigger moves back to 0) start together and the folds seal the rows the run writes, as
in production (before, with the sequence kept, the folds had to walk the empty ids below it,
16,384 a fold, and once the bench had drawn more ids than a run's folds could walk, a run's own
rows went unsealed while it was timed, which left the seal's cost out). A ratio is the
variant's tps over the baseline's in the same round; the figure is the median ratio. Many short
rounds (12 of 2 s by default) rather than a few long ones: on a shared 2-core VM the throughput
drifts by a fifth from one run to the next (CPU steal), and a ratio of two runs seconds apart,
over twelve rounds, moves less than one of runs half a minute apart over five.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gate_windows
import pgbench
from common import PROJECT_ROOT, Server, log, median, migrated, revisions

DIGEST = "0123456789abcdef0123456789abcdef"
FOUR_COMMANDS = ("dot_iu_add_piece", "dot_iu_healthcheck", "dot_iu_route_deliver",
                 "dot_iu_split_piece")
DIFFERENT = "(ARRAY[" + ", ".join(f"'{c}'" for c in FOUR_COMMANDS) + "])[:client_id % 4 + 1]"
# workload: (command expression, the commands it names, run_mode, run_status)
WORKLOADS = {
    "applied rows, same command": ("'dot_iu_add_piece'", ("dot_iu_add_piece",), "apply", "applied"),
    "applied rows, different commands": (DIFFERENT, FOUR_COMMANDS, "apply", "applied"),
    "verify rows, same command": ("'dot_iu_add_piece'", ("dot_iu_add_piece",), "verify",
                                  "verified"),
}
# Each database and the revision it is upgraded to ("head" resolved).
DATABASES = {"head": "head", "0009": "0009_tally_watermark"}
BASELINE = "plain INSERT, head"
YARDSTICK = "minimal plpgsql logger, head"


def head_logger_version() -> str:
    """The newest fn_dot_iu_command_log version file: the logger head runs."""
    files = (PROJECT_ROOT / "sql_functions").glob("fn_dot_iu_command_log.v*.sql")
    return f"v{max(int(path.name.split('.')[1][1:]) for path in files)}"


def variants() -> list[tuple[str, str, str]]:
    """(label, database, statement kind); the first is the baseline."""
    return [
        (BASELINE, "head", "insert"),
        (f"logger {head_logger_version()}, head", "head", "logger"),
        (YARDSTICK, "head", "minimal"),
        ("logger v3, 0009", "0009", "logger"),
    ]


def statement(kind: str, command: str, snapshot: str, mode: str = "apply",
              status: str = "applied") -> str:
    if kind == "logger":
        return (
            f"SELECT public.fn_dot_iu_command_log({command}, '{mode}', '{status}', 'bench', "
            f"'{DIGEST}');\n"
        )
    if kind == "minimal":
        return f"SELECT public.bench_minimal_log({command}, '{mode}', '{status}');\n"
    return (
        "INSERT INTO public.dot_iu_command_run (command_name, run_mode, run_status, mutating,"
        f" actor, params_digest, gate_snapshot) VALUES ({command}, '{mode}', '{status}', true,"
        f" 'bench', '{DIGEST}', '{snapshot}');\n"
    )


def minimal_logger(snapshot: str) -> str:
    """The yardstick: the vocabulary check and the baseline's insert (same row, same literal
    snapshot), with the logger's function attributes."""
    return f"""
CREATE OR REPLACE FUNCTION public.bench_minimal_log(p_command text, p_mode text,
                                                    p_status text)
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
    VALUES (p_command, p_mode, p_status, v_mutating, 'bench', '{DIGEST}', '{snapshot}')
    RETURNING run_id INTO v_run_id;
    RETURN v_run_id;
END
$function$"""


class Ledgers:
    """Empties a database's ledger before a run (at head closing its gates first and opening
    them again after, so the run starts with a fresh window) and says what a run wrote."""

    def __init__(self, server: Server, databases: dict[str, str], gates: list[str]):
        self.server, self.databases, self.gates = server, databases, gates

    def empty(self, database: str) -> int:
        """Empty the ledger; returns the newest seal link's id (0 at 0009)."""
        with self.server.connect(self.databases[database]) as conn:
            if database == "head":
                gate_windows.close_gates(conn, self.gates)
            with conn.transaction():
                if database == "head":  # 0012 on: the switch names the deleting transaction
                    conn.execute("SELECT set_config('dot_iu.ledger_maintenance',"
                                 " pg_current_xact_id()::text, true)")
                else:
                    conn.execute("SET LOCAL dot_iu.ledger_maintenance = 'on'")
                # RESTART IDENTITY: the truncate trigger moves the tally's watermark back to 0,
                # so run ids must start from 1 again, or the folds of the timed run would walk
                # the empty ids below the old sequence (16,384 a fold) before any of its rows.
                conn.execute("TRUNCATE public.dot_iu_command_run, public.iu_gate_transition"
                             " RESTART IDENTITY")
            if database != "head":
                return 0
            gate_windows.open_gates(conn, self.gates)
            return conn.execute("SELECT coalesce(max(seal_id), 0)"
                                " FROM public.dot_iu_ledger_seal").fetchone()[0]

    def facts(self, database: str, newest_link: int) -> dict:
        """How many rows the run wrote, how many run-ledger seal links it made and how many rows
        those links sealed (head)."""
        with self.server.connect(self.databases[database]) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM public.dot_iu_command_run"
                " WHERE command_name NOT LIKE 'dot\\_iu\\_gate\\_%'").fetchone()[0]
            links = sealed = None
            if database == "head":
                links, sealed = conn.execute(
                    "SELECT count(*), coalesce(sum(row_count), 0)::bigint"
                    " FROM public.dot_iu_ledger_seal WHERE ledger = 'run' AND seal_id > %s",
                    (newest_link,)).fetchone()
        return {"rows": rows, "run_links": links, "sealed_rows": sealed}


def written_row(server: Server, dbname: str, sql: str) -> dict:
    """The one row ``sql`` writes, every column but run_id and created_at."""
    with server.connect(dbname) as conn:
        conn.execute(sql)
        rows = conn.execute(
            "SELECT to_jsonb(r) - 'run_id' - 'created_at' FROM public.dot_iu_command_run AS r"
            " WHERE command_name NOT LIKE 'dot\\_iu\\_gate\\_%'"
        ).fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]


def head_snapshot(server: Server, ledgers: Ledgers, command: str) -> str:
    """The live gate snapshot the head logger records with the gates open, as JSON text (the
    same for every kind of row)."""
    ledgers.empty("head")
    row = written_row(server, ledgers.databases["head"], statement("logger", command, ""))
    ledgers.empty("head")
    return json.dumps(row["gate_snapshot"], sort_keys=True)


def same_rows(server: Server, ledgers: Ledgers, command: str, snapshot: str,
              labelled: list[tuple[str, str, str]], mode: str, status: str) -> dict:
    """Every head variant writes the same row (but run_id and created_at), and 0009's logger
    the same in every column it has but the snapshot (0009 has no live gates), or the ratios
    lie."""
    rows = {}
    for label, database, kind in labelled:
        ledgers.empty(database)
        rows[label] = written_row(server, ledgers.databases[database],
                                  statement(kind, command, snapshot, mode, status))
        ledgers.empty(database)
    for label, database, _ in labelled:
        have = rows[label]
        want = {key: value for key, value in rows[BASELINE].items() if key in have}
        if database != "head":  # 0009 records no live gates: compare all but the snapshot
            have = {key: value for key, value in have.items() if key != "gate_snapshot"}
            want.pop("gate_snapshot")
        if have != want:
            raise AssertionError(f"{label} writes a different row: {have} != {want}")
    return rows


def run(server: Server, rounds: int, seconds: int, modes: list[str]) -> dict:
    labelled = variants()
    resolved = revisions(*DATABASES.values())
    databases = {key: f"bench_{key}" for key in DATABASES}
    at = {key: migrated(server, databases[key], resolved[DATABASES[key]]) for key in DATABASES}
    with server.connect(databases["head"]) as conn:
        gates = gate_windows.needed(conn, [c for _, cs, _, _ in WORKLOADS.values() for c in cs])
    ledgers = Ledgers(server, databases, gates)
    first_command = WORKLOADS["applied rows, same command"][0]
    snapshot = head_snapshot(server, ledgers, first_command)
    with server.connect(databases["head"]) as conn:
        # Created by the owner role, as a revision creates the shipped logger, so its body meets
        # the same permission checks (the superuser's are skipped).
        conn.execute("SET ROLE dot_iu_owner")
        conn.execute(minimal_logger(snapshot))
        conn.execute("RESET ROLE")
    rows = {f"{mode} {status}": same_rows(server, ledgers, first_command, snapshot, labelled,
                                          mode, status)
            for _, _, mode, status in WORKLOADS.values()}
    logger_label = labelled[1][0]
    results: dict = {
        "clients": pgbench.CLIENTS,
        "threads": pgbench.THREADS,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "revisions": at,
        "baseline": BASELINE,
        "goal": logger_label,
        "goal_ratio": 0.85,
        "yardstick": YARDSTICK,
        "gates_open_at_head": gates,
        "head_snapshot": snapshot,
        "rows_written_once": rows,
        "variants": {
            label: {"database": database, "revision": at[database], "statement": kind}
            for label, database, kind in labelled
        },
        "workloads": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-scripts-") as scratch:
        for workload, (command, _, run_mode, run_status) in WORKLOADS.items():
            scripts = {}
            for kind in ("insert", "logger", "minimal"):
                name = workload.replace(" ", "-").replace(",", "")
                scripts[kind] = Path(scratch) / f"{kind}-{name}.sql"
                scripts[kind].write_text(statement(kind, command, snapshot, run_mode, run_status))
            for mode in modes:
                log(
                    f"throughput: {workload}, -M {mode}, {rounds} round(s) x "
                    f"{len(labelled)} variant(s) x {seconds}s"
                )
                tps: dict[str, list[float]] = {label: [] for label, _, _ in labelled}
                ratios: dict[str, list[float]] = {label: [] for label, _, _ in labelled}
                written: dict[str, list[dict]] = {label: [] for label, _, _ in labelled}
                for number in range(rounds):
                    shift = number % len(labelled)
                    order = labelled[shift:] + labelled[:shift]
                    this_round = {}
                    for label, database, kind in order:
                        newest_link = ledgers.empty(database)
                        this_round[label] = pgbench.tps(
                            server, databases[database], scripts[kind], seconds, mode
                        )
                        written[label].append(ledgers.facts(database, newest_link))
                    for label in this_round:
                        tps[label].append(this_round[label])
                        ratios[label].append(this_round[label] / this_round[BASELINE])
                results["workloads"].setdefault(workload, {})[mode] = {
                    label: {
                        "tps": tps[label],
                        "ratios": ratios[label],
                        "tps_p50": median(tps[label]),
                        "ratio_p50": median(ratios[label]),
                        "written": written[label],
                    }
                    for label, _, _ in labelled
                }
    links = [entry["run_links"] for modes_ in results["workloads"].values()
             for variants_ in modes_.values() for entry in variants_[logger_label]["written"]]
    results["logger_run_links"] = {"min": min(links), "max": max(links)} if links else None
    shares = [entry["sealed_rows"] / entry["rows"] for modes_ in results["workloads"].values()
              for variants_ in modes_.values() for entry in variants_[logger_label]["written"]
              if entry["rows"]]
    results["logger_sealed_share"] = ({"min": min(shares), "max": max(shares)} if shares
                                      else None)
    for dbname in databases.values():
        server.drop_database(dbname)
    return results
