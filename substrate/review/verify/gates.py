"""The ``gates`` section of ``substrate verify``: are the never-flip gates intact and the others
closed?

With the gate protocol installed, the database answers (``fn_iu_gate_verify_closed()``, SPEC
3.4); before it (a database at an older revision) the gate values are read from ``dot_config``
against the gate classes of the registry. Judgement, the same either way:

- a never-flip gate that is open (or missing): a finding, always;
- a governable gate open without a live window on record (orphaned, what the watchdog
  closes): a finding, always;
- a governable gate open inside its approved window: legitimate operation, so reported, and a
  finding only with ``--strict`` (a deploy may insist that every gate is shut).
"""

from __future__ import annotations

import json

from seeds.registry import GOVERNABLE_GATES, NEVER_FLIP_GATES

PROTOCOL = "public.fn_iu_gate_verify_closed(text)"


def _from_protocol(conn) -> dict:
    report = conn.execute("SELECT public.fn_iu_gate_verify_closed(NULL)").fetchone()[0]
    return report if isinstance(report, dict) else json.loads(report)


def _from_config(conn) -> dict | None:
    if not conn.execute("SELECT to_regclass('public.dot_config') IS NOT NULL").fetchone()[0]:
        return None
    values = dict(conn.execute(
        "SELECT key, value FROM public.dot_config WHERE key = ANY(%s)",
        (list(GOVERNABLE_GATES + NEVER_FLIP_GATES),)).fetchall())
    gates = []
    for classname, keys in (("governable", GOVERNABLE_GATES), ("never-flip", NEVER_FLIP_GATES)):
        for key in sorted(keys):
            is_open = values.get(key) == "true"
            gates.append({"gate": key, "class": classname, "present": key in values,
                          "value": values.get(key), "open": is_open, "safe": not is_open,
                          "window": None, "orphaned": None})
    governed = all(g["safe"] for g in gates if g["class"] == "governable")
    intact = all(g["safe"] for g in gates if g["class"] == "never-flip")
    return {"all_safe": governed and intact, "all_governed_closed": governed,
            "never_flip_intact": intact, "gates": gates}


def section(conn) -> dict:
    has_protocol = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL",
                                (PROTOCOL,)).fetchone()[0]
    report = _from_protocol(conn) if has_protocol else _from_config(conn)
    source = "fn_iu_gate_verify_closed()" if has_protocol else "dot_config values"
    if report is None:
        return {"ok": False, "strict_ok": True, "source": None, "summary": "no dot_config",
                "findings": ["public.dot_config does not exist (not migrated?)"]}
    gates = report.get("gates") or []
    findings, opened = [], []
    for gate in gates:
        if gate["class"] == "never-flip" and (not gate.get("safe") or not gate.get("present")):
            findings.append(f"never-flip gate {gate['gate']} is "
                            + (f"{gate.get('value')!r}" if gate.get("present") else "missing"))
        elif gate["class"] == "governable" and gate.get("open"):
            window = gate.get("window") or {}
            if gate.get("orphaned"):
                findings.append(f"governable gate {gate['gate']} is open without a live window "
                                "(orphaned: fn_iu_gate_watchdog closes it)")
            else:
                until = f" until {window['expires_at']}" if window.get("expires_at") else ""
                opened.append(f"{gate['gate']} is open{until}")
    closed = sum(1 for g in gates if g["class"] == "governable" and not g.get("open"))
    governable = sum(1 for g in gates if g["class"] == "governable")
    intact = report.get("never_flip_intact") and not any("never-flip" in f for f in findings)
    summary = (f"all_safe={str(report['all_safe']).lower()}: {closed}/{governable} governable "
               f"closed, never-flip {'intact' if intact else 'BROKEN'} (from {source})")
    return {
        "ok": not findings,
        "strict_ok": not opened,
        "source": source,
        "all_safe": report["all_safe"],
        "all_governed_closed": report["all_governed_closed"],
        "never_flip_intact": report["never_flip_intact"],
        "gates": gates,
        "summary": summary,
        "findings": findings + [f"{note} (a finding only with --strict)" for note in opened],
    }
