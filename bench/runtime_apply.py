"""Item 9: one ``OperatorRuntime.apply`` of a trivial command against the bare transaction it
stands for.

One database at head with the IU Core stand-ins of tests/fixtures/iu_core_standins.sql (so the
catalog resolves as on IU Core), whose ``fn_iu_collection_healthcheck()`` is then replaced by
a bench stand-in that answers a constant (the fixture's refuses to run); a login
``bench_runtime`` in dot_iu_runtime, as a deployment runs the runtime; the runtime gate open
(dot_iu_healthcheck needs no other). Timed, each call in turn, rotating:

- ``OperatorRuntime.apply('dot_iu_healthcheck', {}, 'bench')`` through ``psycopg_executor``,
  in process (one connection, kept), three ways: a runtime inside ``holding_lease()`` for the
  whole run (a long-lived applier: one transaction per apply, the lease kept); a runtime kept
  from call to call (its catalog row kept; every apply one transaction that takes the lease and
  gives it back); a new runtime for every call, as ``substrate run apply`` is (the catalog row,
  then the apply: two transactions);
- the same through ``psql_executor`` (one ``psql`` process per transaction), holding its lease
  and kept from call to call;
- the baseline: a bare psycopg transaction on a kept connection, as that login: BEGIN, the
  target function, the logger writing the same 'applied' row (the runtime's digest and evidence
  keys, but the lease it did not take), COMMIT;
- for scale, the baseline's transaction through one ``psql`` process.

Each runtime has a lease of its own, so none waits for another. The runtime's executors are
wrapped in a timer, so each apply is also split into the transactions it makes (the catalog row;
the apply, with what it does with the lease). Ratios are
p50 over the baseline's p50, same run; a psql row also has its ratio to the bare transaction
through one psql process.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import gate_windows
import psycopg
from common import PROJECT_ROOT, Server, log, migrated, revisions, summary
from psycopg import sql

from substrate.runtime import OperatorRuntime, psql_executor, psycopg_executor

COMMAND = "dot_iu_healthcheck"
LOGIN = "bench_runtime"
WARMUP = 5
STANDINS = PROJECT_ROOT / "tests" / "fixtures" / "iu_core_standins.sql"
ANSWERING = """
CREATE OR REPLACE FUNCTION public.fn_iu_collection_healthcheck()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RETURN '{"healthy": true}'::jsonb;
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_healthcheck() IS
  'BENCH STAND-IN for IU Core (bench/runtime_apply.py): answers a constant; not IU Core.';
"""
TARGET = "SELECT public.fn_iu_collection_healthcheck()"
LOG = ("SELECT public.fn_dot_iu_command_log(%s::text, 'apply', 'applied', 'bench', %s::text,"
       " %s::jsonb)")
# What each of the runtime's transactions is, by a name in its first statement.
PHASES = (
    ("fn_dot_iu_runtime_apply_begin", "apply"),
    ("fn_dot_iu_runtime_lease_release", "lease release"),
    ("dot_iu_command_catalog", "catalog row"),
)


def phase(statements) -> str:
    """A transaction's phase, with what it does with the lease: taken by apply_begin's own
    statement, given back by a later one."""
    first = statements[0].sql
    name = next((name for key, name in PHASES if key in first), "other")
    if name == "apply":
        taken = "lease_acquire" in first
        given = any("lease_release" in s.sql for s in statements[1:])
        name += {(True, True): " (lease taken and given back)", (True, False): " (lease taken)",
                 (False, False): " (lease kept)", (False, True): " (lease given back)"}[
                     (taken, given)]
    return name


class Timed:
    """An executor that times each transaction it runs, by phase."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds: dict[str, list[float]] = {}

    def run(self, statements, *, read_only: bool = False):
        phase_name = phase(statements)
        start = time.perf_counter()
        try:
            return self.inner.run(statements, read_only=read_only)
        finally:
            self.seconds.setdefault(phase_name, []).append(time.perf_counter() - start)

    def close(self) -> None:
        self.inner.close()


def prepare(server: Server, dbname: str) -> None:
    with server.connect(dbname) as conn:
        conn.execute(STANDINS.read_text())
        conn.execute(ANSWERING)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE dot_iu_runtime").format(
            sql.Identifier(LOGIN)))
        gate_windows.open_gates(conn, [gate_windows.RUNTIME_GATE])


def login_conninfo(server: Server, dbname: str) -> str:
    return server.conninfo(dbname).replace("user=postgres", f"user={LOGIN}")


def evidence() -> str:
    """The runtime's evidence of an 'applied' row but the lease it held: the bare transaction
    holds no lease, and the logger refuses a row naming a lease its login does not hold."""
    return json.dumps({"correlation_id": str(uuid.uuid4()), "mode": "apply", "result_rows": 1,
                       "statements": 1}, sort_keys=True)


def bare(conn, digest: str):
    """The baseline: the target and the same 'applied' row, in one transaction."""
    facts = evidence()

    def call() -> None:
        conn.execute("BEGIN")
        conn.execute(TARGET).fetchall()
        conn.execute(LOG, (COMMAND, digest, facts)).fetchall()
        conn.execute("COMMIT")

    return call


def bare_psql(server: Server, dbname: str, digest: str):
    script = (f"BEGIN;\n{TARGET};\nSELECT public.fn_dot_iu_command_log('{COMMAND}', 'apply',"
              f" 'applied', 'bench', '{digest}', '{evidence()}'::jsonb);\nCOMMIT;\n")
    argv = [server.tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d",
            login_conninfo(server, dbname), "-f", "-"]

    def call() -> None:
        subprocess.run(argv, input=script, capture_output=True, text=True, check=True)

    return call


def applier(runtime: OperatorRuntime):
    def call() -> None:
        result = runtime.apply(COMMAND, {}, "bench")
        if result.status != "applied":
            raise AssertionError(f"apply: {result.status}: {result.message}")

    return call


def new_applier(executor):
    """A new runtime for every call, as ``substrate run apply`` makes one."""

    def call() -> None:
        applier(OperatorRuntime(executor, lease="bench_new"))()

    return call


def run(server: Server, calls: int) -> dict:
    dbname = "bench_runtime"
    revision = migrated(server, dbname, revisions("head")["head"])
    prepare(server, dbname)
    timed = {
        kind: Timed(psycopg_executor(login_conninfo(server, dbname))) for kind in
        ("psycopg, holding its lease", "psycopg, kept", "psycopg, new each call")}
    psql = {kind: Timed(psql_executor("127.0.0.1", server.cluster.port, LOGIN, dbname,
                                      psql=server.tool("psql")))
            for kind in ("psql, holding its lease", "psql, kept")}
    timed.update(psql)
    held = OperatorRuntime(timed["psycopg, holding its lease"], lease="bench_held")
    held_psql = OperatorRuntime(timed["psql, holding its lease"], lease="bench_held_psql")
    kept = OperatorRuntime(timed["psycopg, kept"], lease="bench_kept")
    kept_psql = OperatorRuntime(timed["psql, kept"], lease="bench_kept_psql")
    digest = kept.apply(COMMAND, {}, "bench").params_digest
    conn = psycopg.connect(login_conninfo(server, dbname), autocommit=True)
    actions = {
        "bare psycopg transaction": bare(conn, digest),
        "OperatorRuntime.apply holding its lease, psycopg_executor": applier(held),
        "OperatorRuntime.apply, kept runtime, psycopg_executor": applier(kept),
        "OperatorRuntime.apply, new runtime each call, psycopg_executor":
            new_applier(timed["psycopg, new each call"]),
        "OperatorRuntime.apply holding its lease, psql_executor": applier(held_psql),
        "OperatorRuntime.apply, kept runtime, psql_executor": applier(kept_psql),
        "bare transaction, one psql process": bare_psql(server, dbname, digest),
    }
    with held.holding_lease(), held_psql.holding_lease():
        for action in actions.values():
            for _ in range(WARMUP):
                action()
        for executor in timed.values():
            executor.seconds.clear()
        log(f"runtime: {calls} calls of each, rotating")
        seconds: dict[str, list[float]] = {name: [] for name in actions}
        names = list(actions)
        for number in range(calls):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                actions[name]()
                seconds[name].append(time.perf_counter() - start)
    conn.close()
    for executor in timed.values():
        executor.close()
    with server.connect(dbname) as admin:
        applied = admin.execute(
            "SELECT count(*) FROM public.dot_iu_command_run"
            " WHERE command_name = %s AND run_status = 'applied'", (COMMAND,)).fetchone()[0]
        gate_windows.close_gates(admin, [gate_windows.RUNTIME_GATE])
    server.drop_database(dbname)
    with server.connect("postgres") as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(LOGIN)))
    baseline, psql_baseline = "bare psycopg transaction", "bare transaction, one psql process"
    results: dict = {"revision": revision, "command": COMMAND, "calls": calls,
                     "baseline": baseline, "psql_baseline": psql_baseline, "goal_ratio": 1.5,
                     "applied_rows": applied, "ms": {}, "phases_ms": {}}
    base_p50 = summary(seconds[baseline])["p50"]
    psql_p50 = summary(seconds[psql_baseline])["p50"]
    for name in actions:
        results["ms"][name] = summary([s * 1000 for s in seconds[name]])
        results["ms"][name]["ratio_p50"] = summary(seconds[name])["p50"] / base_p50
        if "psql" in name:
            results["ms"][name]["psql_ratio_p50"] = summary(seconds[name])["p50"] / psql_p50
    for kind, executor in timed.items():
        results["phases_ms"][kind] = {
            name: summary([s * 1000 for s in values])
            for name, values in executor.seconds.items()}
    return results
