"""The ``derived`` section of ``substrate verify``: is what the fast paths read in step with its
source?

Two pieces of state exist only to make the hot paths cheap (0009_tally_watermark), and both
can be checked without a pass over the ledger:

- ``dot_iu_gate_snapshot``, the one row the logger copies as a run's gate_snapshot: from
  0011_gates_fail_closed it must equal what the gate readers say (``fn_iu_gate_state``) while
  it is valid (``valid_until`` ahead; past it the logger computes the readings itself, so an
  old row is no finding); before 0011 it must equal the values ``dot_config`` holds for the
  gates of ``fn_iu_gate_classes()``. A finding otherwise, with the repair:
  ``SELECT fn_dot_iu_gate_snapshot_refresh()``. From 0018_gate_rule_open_gates its generated
  column ``open_gates``, which the logger's gate rule reads, must name exactly the keys the
  snapshot reads open (``'true'``, in byte order), recomputed here without the owner's
  generation function: a stored generated column keeps its value when that function is
  replaced, until the row is written again. Same repair (a refresh rewrites the row);
- ``dot_iu_command_run_tally_watermark``: its one row must exist (a finding otherwise, with the
  repair: ``SELECT fn_dot_iu_command_run_tally_rebuild()``); reported: where it stands and how
  many ledger rows the views read past it (a primary-key range), which grows only while folds
  are held back (a transaction left open after writing the ledger) or nobody logs.

A database at a revision older than 0009 has neither: reported, not a finding.
"""

from __future__ import annotations

SNAPSHOT = "public.dot_iu_gate_snapshot"
WATERMARK = "public.dot_iu_command_run_tally_watermark"


def _exists(conn, relation: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]


READINGS = """
SELECT s.valid_until <= pg_catalog.clock_timestamp()
       OR s.snapshot = (SELECT pg_catalog.jsonb_object_agg(
                                   g.gate_key, CASE WHEN g.reads_open THEN 'true' ELSE 'false' END)
                          FROM public.fn_iu_gate_state(NULL) AS g)
  FROM public.dot_iu_gate_snapshot AS s"""
# The generated column against its source, spelled here as fn_dot_iu_gate_open_keys v1 spells it
# (verify may run as the auditor, who cannot execute that function).
OPEN_GATES = """
SELECT s.open_gates IS NOT DISTINCT FROM ARRAY(
           SELECT e.key FROM pg_catalog.jsonb_each_text(s.snapshot) AS e
            WHERE e.value = 'true' ORDER BY e.key COLLATE "C")
  FROM public.dot_iu_gate_snapshot AS s"""
HAS_OPEN_GATES = """
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = 'public.dot_iu_gate_snapshot'::pg_catalog.regclass
                  AND a.attname = 'open_gates' AND NOT a.attisdropped)"""
VALUES = """
SELECT s.snapshot = (SELECT coalesce(jsonb_object_agg(c.key, c.value), '{}')
                       FROM public.dot_config AS c
                      WHERE c.key IN (SELECT g.gate_key FROM public.fn_iu_gate_classes() AS g))
  FROM public.dot_iu_gate_snapshot AS s"""


def _gate_snapshot(conn) -> tuple[str, list[str]]:
    readings = conn.execute(
        "SELECT pg_catalog.to_regprocedure('public.fn_iu_gate_state(text)') IS NOT NULL"
    ).fetchone()[0]
    rows = conn.execute(READINGS if readings else VALUES).fetchall()
    if not rows:
        return "missing", [f"{SNAPSHOT} has no row: the logger records an empty gate snapshot"
                           " (repair: SELECT public.fn_dot_iu_gate_snapshot_refresh())"]
    if not rows[0][0]:
        return "STALE", [f"{SNAPSHOT} differs from what the gate readers say"
                         " (repair: SELECT public.fn_dot_iu_gate_snapshot_refresh())"]
    if conn.execute(HAS_OPEN_GATES).fetchone()[0] and not conn.execute(OPEN_GATES).fetchone()[0]:
        return "STALE", [f"{SNAPSHOT}.open_gates differs from the gates its snapshot reads open:"
                         " the logger's gate rule reads it (repair: SELECT"
                         " public.fn_dot_iu_gate_snapshot_refresh())"]
    return "fresh", []


def _watermark(conn) -> tuple[str, dict, list[str]]:
    row = conn.execute(
        f"SELECT w.folded_through, w.candidate_through,"
        f"       (SELECT count(*) FROM public.dot_iu_command_run AS r"
        f"         WHERE r.run_id > w.folded_through)"
        f"  FROM {WATERMARK} AS w").fetchone()
    if row is None:
        return "missing", {}, [f"{WATERMARK} has no row: the views undercount and maintenance"
                               " deletes are refused (repair: SELECT"
                               " public.fn_dot_iu_command_run_tally_rebuild())"]
    folded, candidate, past = row
    facts = {"folded_through": folded, "candidate_through": candidate, "rows_past": past}
    return f"at run_id {folded}, {past} row(s) past it", facts, []


def section(conn) -> dict:
    if not (_exists(conn, SNAPSHOT) and _exists(conn, WATERMARK)):
        return {"ok": True, "strict_ok": True, "installed": False, "findings": [],
                "summary": "not installed (a revision before 0009_tally_watermark)"}
    snapshot, findings = _gate_snapshot(conn)
    tally, facts, more = _watermark(conn)
    findings += more
    return {
        "ok": not findings,
        "strict_ok": True,
        "installed": True,
        "gate_snapshot": snapshot,
        "tally_watermark": facts or None,
        "summary": f"gate snapshot {snapshot}; tally watermark {tally}",
        "findings": findings,
    }
