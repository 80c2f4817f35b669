"""Item 1b: where the head logger's work goes, part by part, counted in instructions.

Item 1 times whole calls from pgbench clients on a shared VM, whose throughput drifts by a
fifth from one run to the next: a part that costs 2% of a call cannot be told from the noise
there. This item counts instead. In one database at head, with the gates an 'applied' row of
dot_iu_add_piece needs open, the bench creates copies of the head logger (from its own file in
sql_functions/) under other names, created by the shipped logger's owner role, each with ONE part
switched off by an exact edit of its text (a part whose text is no longer found is reported,
not guessed): the tally fold and the seal it makes, the hold on the gates, the gate rule's
check, and the input rules' one test (the test every call takes; this item's row, a printable
ASCII actor with empty evidence, passes it and never meets the full actor and evidence rules
behind it); one copy with all of them off; and a second copy of the whole logger, which counts
the same as the first but for a few instructions (the check that the figure is deterministic).
Before anything is counted, every copy that keeps the gate rule must refuse an
applied row while the composer gate is shut, and the copies without it must write one, so an
edit that took the rule with it is caught. Then the ledger is emptied, its sequence
set to a multiple of 1,024 and the tally's watermark brought up to it, and the cluster copied
once (pg_basebackup). Each variant runs in a single-user backend on a fresh copy of that copy,
under valgrind's callgrind: ``WARM`` calls, then ``CALLS`` more, each call a simple-protocol
statement and a transaction of its own, as item 1's clients send them (the plain INSERT of item
1, parsed and planned on every call; the minimal logger of item 1; the copies). Counting only
inside exec_simple_query, the instructions of the ``CALLS`` calls are the difference of a run of
``WARM + CALLS`` and one of ``WARM``. The window holds exactly one of the logger's folds, the one
that moves (and seals) the 1,024 rows the warm-up wrote, so the fold and its seal are counted at
their real cost: one row per call. Instructions are not time: code that misses the CPU's caches
(the executor's start-up, catalog lookups) takes more time per instruction than the parser's
loops, so a part's share of instructions approximates its share of a call's server time and no
more. Needs valgrind; without it the item says so and is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import gate_windows
import psycopg
from common import PROJECT_ROOT, Server, log, migrated, revisions
from throughput import DIGEST, head_logger_version, minimal_logger, statement

from substrate.devdb import server as devdb

WARM = 1024
CALLS = 1024
DATABASE = "bench_logger_parts"
COMPOSER = "iu_core.composer_enabled"
# The copies and the minimal logger are created by the role that owns the shipped logger, as
# a revision creates it (SET ROLE): their bodies meet the same permission checks (a superuser's
# are skipped), and their pg_proc rows are stored as the shipped one is. An ALTER FUNCTION ...
# OWNER TO after the fact would rewrite the row with its argument defaults compressed, and
# every call of a copy would decompress them twice (about 6,000 instructions).
OWNER = "dot_iu_owner"
# The window holds exactly one fold, which seals the rows of the warm-up (see aligned()).
assert WARM % 1024 == 0 and CALLS == 1024
LOGGER = "public.fn_dot_iu_command_log("
# The applied row's INSERT checks the gate rule in its WHERE clause: from v8 one containment
# over the snapshot's open_gates, in v7 a lookup of each gate in the snapshot's JSON.
GATE_RULE_V8 = ("\n           AND s.open_gates @> ('iu_core.operator_runtime_enabled'::text"
                " || c.required_gates)\n")
GATE_RULE = (
    "\n"
    "           AND s.snapshot ->> 'iu_core.operator_runtime_enabled' = 'true'\n"
    "           AND CASE pg_catalog.cardinality(c.required_gates)\n"
    "                    WHEN 0 THEN true\n"
    "                    WHEN 1 THEN s.snapshot ->> c.required_gates[1] = 'true'\n"
    "                    ELSE s.snapshot @> pg_catalog.jsonb_object(\n"
    "                             c.required_gates,\n"
    "                             pg_catalog.array_fill('true'::text,\n"
    "                                                   ARRAY[pg_catalog.cardinality("
    "c.required_gates)]))\n"
    "                END\n"
)
# The input rules' one test: every call takes it, and a printable ASCII actor with empty
# evidence (this item's row, and most rows) passes it without meeting the full actor and
# evidence rules behind it, which this item's row never reaches.
INPUT_TEST = ("    IF pg_catalog.length(p_actor) > 200 OR p_actor !~ '^[ -~]*[0-9A-Za-z][ -~]*$'\n"
              "       OR p_evidence IS DISTINCT FROM '{}'::jsonb\n")
INPUT_TEST_END = "'dot_iu_runtime_lease_break') THEN\n        IF pg_catalog.length(p_actor)"
# (part, alternatives): an alternative is a list of (text in the logger, its replacement), all
# of which must be found; the first alternative that fits this logger version is used. Each
# edit makes the part's condition constant false (so PL/pgSQL never evaluates it) or its
# statement a no-op.
PARTS = (
    ("tally fold and seal", [
        [("PERFORM public.fn_dot_iu_command_run_tally_fold();", "NULL;")],
    ]),
    # Only the lock: the IF v_applied around it also guards the applied row's INSERT (the one
    # with the gate rule), so making that IF false would switch the rule off too.
    ("gate hold (shared advisory lock)", [
        [("        IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(",
          "        IF false AND NOT pg_catalog.pg_try_advisory_xact_lock_shared(")],
    ]),
    ("gate rule (the check)", [
        [(GATE_RULE_V8, "\n")],
        [(GATE_RULE, "\n")],
    ]),
    ("input rules' one test (actor, evidence, the package's own commands)", [
        [(INPUT_TEST, INPUT_TEST.replace("    IF ", "    IF false AND (", 1)),
         (INPUT_TEST_END, INPUT_TEST_END.replace("') THEN", "')) THEN", 1))],
    ]),
)
WHOLE = "logger (whole)"
CONTROL = "logger (whole, a second copy)"
BARE = "every part above off"


def switched_off(text: str, alternatives: list) -> str | None:
    """``text`` with the part switched off, or None when no alternative fits it."""
    for edits in alternatives:
        if all(find in text for find, _ in edits):
            for find, replace in edits:  # the first place only: the logger's main path
                text = text.replace(find, replace, 1)
            return text
    return None


def copies(text: str) -> tuple[dict[str, str], list[str]]:
    """{label: CREATE statement} of the logger's copies, and the parts not found."""
    made = {WHOLE: text.replace(LOGGER, "public.bench_log_whole(", 1),
            CONTROL: text.replace(LOGGER, "public.bench_log_control(", 1)}
    missing = []
    bare = text
    for number, (part, alternatives) in enumerate(PARTS):
        without = switched_off(text, alternatives)
        if without is None:
            missing.append(part)
            continue
        made[f"without {part}"] = without.replace(LOGGER, f"public.bench_log_part{number}(", 1)
        bare = switched_off(bare, alternatives)
    made[BARE] = bare.replace(LOGGER, "public.bench_log_bare(", 1)
    return made, missing


def rule_kept(conn, made: dict[str, str], gate: str) -> None:
    """Every copy whose switched-off part is not the gate rule still refuses an applied row
    while ``gate`` is shut (55000), and the copies without the rule write one: an edit that
    took the gate rule with it would make its part's figure lie (the old hold edit did). It
    proves the rule survived, not every other line. Nothing is kept (each call is rolled back);
    ``gate`` is opened again after."""
    gate_windows.close_gates(conn, [gate])
    try:
        for label, create in made.items():
            rule_off = label in (BARE, "without gate rule (the check)")
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(call(function_of(create)))
                refused = None
            except psycopg.Error as error:
                refused = error.sqlstate
            if rule_off and refused is not None:
                raise AssertionError(f"{label}: refused with {refused}, but its rule is off")
            if not rule_off and refused is None:
                raise AssertionError(f"{label}: wrote an applied row with {gate} shut: its edit"
                                     f" switched the gate rule off too")
            if not rule_off and refused != "55000":
                raise AssertionError(f"{label}: refused with {refused}, not 55000, with {gate}"
                                     f" shut")
    finally:
        gate_windows.open_gates(conn, [gate])


def function_of(create: str) -> str:
    return "public.bench_log_" + create.split("public.bench_log_", 1)[1].split("(", 1)[0]


def call(function: str) -> str:
    return f"SELECT {function}('dot_iu_add_piece', 'apply', 'applied', 'bench', '{DIGEST}')"


def aligned(server: Server, gates: list[str]) -> None:
    """An empty ledger whose next run_id follows a multiple of 1,024, with the tally's watermark
    up to it and ``gates`` open: the warm-up's last call then records the fold's candidate (the
    1,024 rows of the warm-up) and the counted window's last call moves and seals them."""
    sequence = ("pg_get_serial_sequence('public.dot_iu_command_run', 'run_id')")
    with server.connect(DATABASE) as conn:
        gate_windows.close_gates(conn, gates)
        with conn.transaction():
            conn.execute("SELECT set_config('dot_iu.ledger_maintenance',"
                         " pg_current_xact_id()::text, true)")
            conn.execute("TRUNCATE public.dot_iu_command_run, public.iu_gate_transition")
        gate_windows.open_gates(conn, gates)
        conn.execute(f"SELECT setval({sequence}, (pg_sequence_last_value({sequence}::regclass)"
                     " / 1024 + 1) * 1024)")
        for _ in range(10_000):
            through, candidate, last = conn.execute(
                "SELECT w.folded_through, w.candidate_through,"
                f" pg_sequence_last_value({sequence}::regclass)"
                " FROM public.dot_iu_command_run_tally_watermark AS w").fetchone()
            if through == last and candidate in (None, last):
                return
            conn.execute("SELECT public.fn_dot_iu_command_run_tally_fold()")
        raise RuntimeError("the tally's watermark did not reach the ledger's sequence")


class Counter:
    """Single-user backends under callgrind, each on a fresh copy of one base backup."""

    def __init__(self, server: Server, scratch: Path):
        self.cluster = server.cluster
        self.scratch = scratch  # root's; only base/ and out/ belong to the server's user
        self.base = scratch / "base"
        self.out = scratch / "out"
        user = devdb.server_user()
        for folder in (self.base, self.out):
            folder.mkdir(mode=0o700)
            if user:
                shutil.chown(folder, user)
        done = subprocess.run(self.cluster._as_server([
            str(self.cluster.bindir / "pg_basebackup"), "-d", server.conninfo(DATABASE),
            "-D", str(self.base), "-X", "stream", "-c", "fast"]), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pg_basebackup: {done.stderr.strip()}")

    def instructions(self, label: str, sql: str, calls: int) -> int:
        """What ``calls`` runs of ``sql`` count inside exec_simple_query, on a fresh copy."""
        copy = self.scratch / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["cp", "-a", str(self.base), str(copy)], check=True)
        script = self.scratch / "script.sql"  # read by root, as the backend's stdin
        script.write_text((sql + ";\n") * calls)
        out = self.out / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
                "--toggle-collect=exec_simple_query", f"--callgrind-out-file={out}",
                str(self.cluster.bindir / "postgres"), "--single", "-D", str(copy),
                *(f"-c{setting}" for setting in devdb.FAST_SETTINGS), DATABASE]
        with script.open() as stdin:
            done = subprocess.run(self.cluster._as_server(argv), stdin=stdin,
                                  capture_output=True, text=True, cwd=self.out)
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line]
        if done.returncode != 0 or errors or not out.is_file():
            raise RuntimeError(f"{label}: single-user run failed:"
                               f" {errors[:3] or done.stderr[-500:]}")
        totals = [line for line in out.read_text().splitlines()
                  if line.startswith(("summary:", "totals:"))]
        out.unlink()
        shutil.rmtree(copy, ignore_errors=True)
        return int(totals[0].split()[1])

    def per_call(self, label: str, sql: str) -> float:
        warm = self.instructions(label, sql, WARM)
        both = self.instructions(label, sql, WARM + CALLS)
        return (both - warm) / CALLS


def run(server: Server) -> dict:
    if not shutil.which("valgrind"):
        log("logger parts: skipped, valgrind is not installed (apt-get install valgrind)")
        return {"skipped": "valgrind is not installed (apt-get install valgrind)"}
    revision = migrated(server, DATABASE, revisions("head")["head"])
    version = head_logger_version()
    text = (PROJECT_ROOT / "sql_functions" / f"fn_dot_iu_command_log.{version}.sql").read_text()
    with server.connect(DATABASE) as conn:
        gates = gate_windows.needed(conn, ["dot_iu_add_piece"])
        gate_windows.open_gates(conn, gates)
        snapshot = conn.execute(
            "SELECT snapshot::text FROM public.dot_iu_gate_snapshot").fetchone()[0]
        made, missing = copies(text)
        conn.execute(f"SET ROLE {OWNER}")
        for create in made.values():
            conn.execute(create)
        conn.execute(minimal_logger(snapshot))
        conn.execute("RESET ROLE")
        rule_kept(conn, made, COMPOSER)
    statements = {
        "plain INSERT (item 1's baseline)": statement("insert", "'dot_iu_add_piece'", snapshot),
        "minimal plpgsql logger (item 1)": statement("minimal", "'dot_iu_add_piece'", snapshot),
        **{label: call(function_of(create)) for label, create in made.items()},
    }
    statements = {label: sql.strip().rstrip(";") for label, sql in statements.items()}
    aligned(server, gates)
    root = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-", dir=root) as scratch:
        os.chmod(scratch, 0o711)  # the server's user enters (base/, out/), never lists
        counter = Counter(server, Path(scratch))
        log(f"logger parts: {len(statements)} variants x 2 callgrind runs"
            f" ({WARM} and {WARM + CALLS} calls)")
        counted = {label: counter.per_call(label, sql) for label, sql in statements.items()}
    server.drop_database(DATABASE)
    whole = counted[WHOLE]
    return {
        "revision": revision, "logger": version, "warm": WARM, "calls": CALLS,
        "missing_parts": missing,
        "instructions_per_call": counted,
        "saved": {label: whole - value for label, value in counted.items() if label != WHOLE},
    }
