"""Item 1b: where the head logger's time goes, part by part, in the server.

Item 1 compares whole calls from pgbench clients; this item takes the head logger apart. In
one database at head, with the gates an 'applied' row of dot_iu_add_piece needs open, the bench
creates copies of the head logger (from its own file in sql_functions/) under other names, each
with ONE part switched off by an exact edit of its text (a part whose text is no longer found is
reported, not guessed): the tally fold and the seal it makes, the hold on the gates,
the gate rule's check, the actor rule, the evidence rules, the read of the live gate snapshot
(a literal instead); one copy with all of them off; and a second copy of the whole logger,
whose difference from the first is the noise of the figure. Each variant, the minimal plpgsql
logger of item 1 and a plain INSERT of the same row run ``CALLS`` times in one statement (the
plain INSERT in a plpgsql loop), rotated, over ``ROUNDS`` rounds; the figure is microseconds of
server time per call (median), and what switching a part off saves against the whole logger.
"""

from __future__ import annotations

import time

import gate_windows
from common import PROJECT_ROOT, Server, log, median, migrated, revisions
from throughput import DIGEST, head_logger_version, minimal_logger

CALLS = 5000
ROUNDS = 15
LOGGER = "public.fn_dot_iu_command_log("
EVIDENCE_SHAPE = "IF pg_catalog.jsonb_typeof(p_evidence) <> 'object'"
# The common path's INSERT reads the cached snapshot in a join and checks the gate rule in its
# WHERE clause (only the first INSERT, the applied row's, has the rule).
SNAPSHOT_READ = ("               s.snapshot, coalesce(p_evidence, '{}'::jsonb), session_user,"
                 " v_correlation_id,\n")
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
ACTOR_END = "U0010ffff]') THEN\n        RAISE EXCEPTION 'actor %'"
# (part, alternatives): an alternative is a list of (text in the logger, its replacement), all
# of which must be found; the first alternative that fits this logger version is used. Each
# edit makes the part's condition constant false (so PL/pgSQL never evaluates it) or its
# statement a no-op.
PARTS = (
    ("tally fold and seal", [
        [("PERFORM public.fn_dot_iu_command_run_tally_fold();", "NULL;")],
    ]),
    ("gate hold (shared advisory lock)", [
        [("    IF v_applied THEN\n        IF NOT pg_catalog.pg_try_advisory_xact_lock_shared",
          "    IF false THEN\n        IF NOT pg_catalog.pg_try_advisory_xact_lock_shared")],
    ]),
    ("gate rule (the check)", [
        [(GATE_RULE, "\n")],
    ]),
    ("actor rule", [
        [("IF pg_catalog.length(p_actor) > 200 OR p_actor !~ '^[ -~]*[0-9A-Za-z][ -~]*$' THEN",
          "IF false THEN")],
        [("IF p_actor IS NULL OR p_actor !~ '[^[:space:]]'",
          "IF false AND (p_actor IS NULL OR p_actor !~ '[^[:space:]]'"),
         (ACTOR_END, ACTOR_END.replace("') THEN", "')) THEN"))],
        [("IF p_actor ~ '[^[:space:]]'", "IF false AND p_actor ~ '[^[:space:]]'")],
    ]),
    ("evidence rules", [
        [("IF p_evidence IS DISTINCT FROM '{}'::jsonb THEN", "IF false THEN")],
        [(EVIDENCE_SHAPE, EVIDENCE_SHAPE.replace("IF ", "IF false AND (", 1)),
         ("> 4096 THEN", "> 4096) THEN"),
         ("IF p_evidence <> '{}'::jsonb AND pg_catalog.jsonb_path_exists(",
          "IF false AND p_evidence <> '{}'::jsonb AND pg_catalog.jsonb_path_exists(")],
        [(EVIDENCE_SHAPE, EVIDENCE_SHAPE.replace("IF ", "IF false AND (", 1)),
         ("> 4096 THEN", "> 4096) THEN"),
         ("IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(p_evidence)",
          "IF false AND EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(p_evidence)")],
    ]),
    ("live snapshot read", [
        [(SNAPSHOT_READ, "               '{snapshot}'::jsonb, coalesce(p_evidence, '{}'::jsonb),"
                         " session_user, v_correlation_id,\n")],
    ]),
)
WHOLE = "logger (whole)"
CONTROL = "logger (whole, a second copy: the noise)"
BARE = "every part above off"


def switched_off(text: str, alternatives: list, snapshot: str) -> str | None:
    """``text`` with the part switched off, or None when no alternative fits it."""
    for edits in alternatives:
        if all(find in text for find, _ in edits):
            for find, replace in edits:  # the first place only: the logger's main path
                text = text.replace(find, replace.replace("{snapshot}", snapshot), 1)
            return text
    return None


def copies(text: str, snapshot: str) -> tuple[dict[str, str], list[str]]:
    """{label: CREATE statement} of the logger's copies, and the parts not found."""
    made = {WHOLE: text.replace(LOGGER, "public.bench_log_whole(", 1),
            CONTROL: text.replace(LOGGER, "public.bench_log_control(", 1)}
    missing = []
    bare = text
    for number, (part, alternatives) in enumerate(PARTS):
        without = switched_off(text, alternatives, snapshot)
        if without is None:
            missing.append(part)
            continue
        made[f"without {part}"] = without.replace(LOGGER, f"public.bench_log_part{number}(", 1)
        bare = switched_off(bare, alternatives, snapshot)
    made[BARE] = bare.replace(LOGGER, "public.bench_log_bare(", 1)
    return made, missing


def loop(function: str) -> str:
    return (f"SELECT count({function}('dot_iu_add_piece', 'apply', 'applied', 'bench',"
            f" '{DIGEST}')) FROM generate_series(1, {CALLS})")


def insert_loop(snapshot: str) -> str:
    return (f"DO $loop$ BEGIN FOR i IN 1..{CALLS} LOOP INSERT INTO public.dot_iu_command_run"
            " (command_name, run_mode, run_status, mutating, actor, params_digest, gate_snapshot)"
            f" VALUES ('dot_iu_add_piece', 'apply', 'applied', true, 'bench', '{DIGEST}',"
            f" '{snapshot}'); END LOOP; END $loop$")


def run(server: Server) -> dict:
    dbname = "bench_logger_parts"
    revision = migrated(server, dbname, revisions("head")["head"])
    version = head_logger_version()
    text = (PROJECT_ROOT / "sql_functions" / f"fn_dot_iu_command_log.{version}.sql").read_text()
    with server.connect(dbname) as conn:
        gate_windows.open_gates(conn, gate_windows.needed(conn, ["dot_iu_add_piece"]))
        snapshot = conn.execute(
            "SELECT snapshot::text FROM public.dot_iu_gate_snapshot").fetchone()[0]
        made, missing = copies(text, snapshot)
        statements = {"plain INSERT (plpgsql loop)": insert_loop(snapshot),
                      "minimal plpgsql logger": (
                          "SELECT count(public.bench_minimal_log('dot_iu_add_piece', 'apply',"
                          " 'applied'))"
                          f" FROM generate_series(1, {CALLS})")}
        conn.execute(minimal_logger(snapshot))
        for label, create in made.items():
            conn.execute(create)
            name = create.split("public.bench_log_", 1)[1].split("(", 1)[0]
            statements[label] = loop(f"public.bench_log_{name}")
        log(f"logger parts: {len(statements)} variants x {ROUNDS} rounds x {CALLS} calls")
        us: dict[str, list[float]] = {label: [] for label in statements}
        labels = list(statements)
        for number in range(ROUNDS + 1):
            shift = number % len(labels)
            for label in labels[shift:] + labels[:shift]:
                start = time.perf_counter()
                conn.execute(statements[label])
                if number:  # the first round warms up
                    us[label].append((time.perf_counter() - start) * 1e6 / CALLS)
    server.drop_database(dbname)
    p50 = {label: median(values) for label, values in us.items()}
    return {
        "revision": revision, "logger": version, "calls": CALLS, "rounds": ROUNDS,
        "missing_parts": missing,
        "us_per_call": {label: {"p50": p50[label], "runs": us[label]} for label in us},
        "saved_us": {label: p50[WHOLE] - p50[label] for label in us if label != WHOLE},
    }
