"""The ``gates`` section of ``substrate verify``: are the never-flip gates intact and the others
closed?

The database answers: ``fn_iu_gate_verify_closed()`` (SPEC 3.4) reports every gate of
``fn_iu_gate_classes()`` with its class, its value and its window. Judgement:

- a never-flip gate that is open (or missing): a finding, always;
- a governable gate open without a live window on record (orphaned, what the watchdog
  closes): a finding, always;
- a governable gate open inside its approved window: legitimate operation, so reported, and a
  finding only with ``--strict`` (a deploy may insist that every gate is shut).

A database without the gate protocol (a revision before ``0006_gate_protocol``) does not know
its gates' classes, so nothing is judged: "not checked", without a finding.
"""

from __future__ import annotations

import json

PROTOCOL = "public.fn_iu_gate_verify_closed(text)"


def section(conn) -> dict:
    has_protocol = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL",
                                (PROTOCOL,)).fetchone()[0]
    if not has_protocol:
        return {"ok": True, "strict_ok": True, "source": None, "findings": [],
                "summary": "not checked (gate protocol not installed)"}
    report = conn.execute("SELECT public.fn_iu_gate_verify_closed(NULL)").fetchone()[0]
    report = report if isinstance(report, dict) else json.loads(report)
    source = "fn_iu_gate_verify_closed()"
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
