"""The ``seals`` section of ``substrate verify``: were the ledgers rewritten? (docs/seals.md)

Both ledgers are sealed in SHA-256 chains (``dot_iu_ledger_seal``): each link of the run ledger
covers a range of run ids up to the tally's watermark, each link of the transition ledger one
transition, and a 'retire' link records a governed retirement. This section recomputes, with
PostgreSQL's own built-in functions only (never a package function a tamperer could replace):

- every link's seal_sha256 from its fields and the previous link's hash, and that each link
  follows the one before it: an edited, inserted or deleted link breaks the chain there;
- every sealed range's rows_sha256 and row count from the rows as they are now (row::text with
  DateStyle ISO and TimeZone UTC, trailing fields of columns added or dropped since padded or
  trimmed): a row deleted, updated or inserted below the sealed frontier, by any means (triggers
  disabled, ``session_replication_role = replica``, ``OVERRIDING SYSTEM VALUE``), is a finding
  naming the first range that no longer matches;
- that retired ranges are gone and each retirement names the link it retired;
- that no transition escaped its seal (every transition is sealed as it is written), and how
  many run rows wait past the sealed frontier (the tally's next folds seal them).

The ranges are recomputed in parallel on ``workers`` connections when a ``connect`` factory is
given (``substrate verify`` passes one; two on a two-core server).

What it cannot prove: a superuser who rewrites rows and then rebuilds every link after them,
from the first one on, leaves a consistent chain. Only a chain head recorded elsewhere catches
that: the section prints each chain's head, and ``--seal-head SHA256`` (repeatable) makes a
recorded head that is no longer in the chain a finding.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

GENESIS = "0" * 64
SEALS = "public.dot_iu_ledger_seal"
WATERMARK = "public.dot_iu_command_run_tally_watermark"
LEDGERS = {
    "run": ("public.dot_iu_command_run", "run_id"),
    "transition": ("public.iu_gate_transition", "transition_id"),
}
_UTC = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"
LINKS_SQL = f"""
SELECT s.seal_id, s.ledger, s.action, s.first_id, s.last_id, s.row_count, s.column_count,
       s.rows_sha256, s.prev_sha256, s.seal_sha256,
       pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.jsonb_build_array(
           s.prev_sha256, s.ledger, s.action, s.first_id, s.last_id, s.row_count, s.column_count,
           s.rows_sha256,
           pg_catalog.to_char(s.newest_at AT TIME ZONE 'UTC', {_UTC}),
           pg_catalog.to_char(s.sealed_at AT TIME ZONE 'UTC', {_UTC}),
           s.session_login, s.actor, s.reason,
           pg_catalog.to_char(s.retired_before AT TIME ZONE 'UTC', {_UTC}))::text, 'UTF8')),
           'hex') AS recomputed
  FROM {SEALS} AS s
 ORDER BY s.ledger, s.seal_id
"""


def _ranges_sql(table: str, key: str) -> str:
    """Rows hash and count of each given link's range, as the rows are now."""
    return f"""
WITH shape AS (
    SELECT pg_catalog.count(*)::integer AS columns
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = '{table}'::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped
)
SELECT s.seal_id, x.row_count, x.rows_sha256
  FROM {SEALS} AS s
 CROSS JOIN shape
 CROSS JOIN LATERAL (
       SELECT pg_catalog.count(*) AS row_count,
              pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(coalesce(
                  pg_catalog.string_agg(
                      CASE
                          WHEN s.column_count = shape.columns THEN r::text
                          WHEN s.column_count < shape.columns
                               AND pg_catalog.right(r::text, shape.columns - s.column_count + 1)
                                   = pg_catalog.repeat(',', shape.columns - s.column_count) || ')'
                              THEN pg_catalog.left(r::text, -(shape.columns - s.column_count + 1))
                                   || ')'
                          WHEN s.column_count > shape.columns
                              THEN pg_catalog.left(r::text, -1)
                                   || pg_catalog.repeat(',', s.column_count - shape.columns) || ')'
                          ELSE r::text
                      END, E'\\n' ORDER BY r.{key}), ''), 'UTF8')), 'hex') AS rows_sha256
         FROM {table} AS r
        WHERE r.{key} >= s.first_id AND r.{key} <= s.last_id
       ) AS x
 WHERE s.seal_id = ANY (%s)
"""


def _prepare(conn) -> None:
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET DateStyle = 'ISO, YMD'")


def _recompute(conn, ledger: str, seal_ids: list[int]) -> dict[int, tuple[int, str]]:
    table, key = LEDGERS[ledger]
    _prepare(conn)
    rows = conn.execute(_ranges_sql(table, key), (seal_ids,)).fetchall()
    return {seal_id: (count, digest) for seal_id, count, digest in rows}


def _chunks(items: list[int], parts: int) -> list[list[int]]:
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]


def _links(conn) -> list[dict]:
    _prepare(conn)
    cursor = conn.execute(LINKS_SQL)
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _walk_chain(ledger: str, links: list[dict], findings: list[str]) -> tuple[list[dict], int]:
    """Chain and retirement checks of one ledger; (the links whose rows still exist, retired
    through)."""
    prev, retired, sealed, live = GENESIS, 0, {}, []
    broken = False
    for link in links:
        where = f"{ledger} chain, link {link['seal_id']} (ids {link['first_id']}-{link['last_id']})"
        if not broken and link["prev_sha256"] != prev:
            findings.append(f"{where} does not follow the link before it: the chain was cut or "
                            "a link removed")
            broken = True
        if not broken and link["recomputed"] != link["seal_sha256"]:
            findings.append(f"{where}: its fields no longer match its seal_sha256: the link was "
                            "edited")
            broken = True
        prev = link["seal_sha256"]
        if link["action"] == "retire":
            target = sealed.get(link["last_id"])
            if link["first_id"] != retired + 1 or target is None \
                    or target["seal_sha256"] != link["rows_sha256"]:
                findings.append(f"{where}: a retirement that names no sealed range ending there")
            retired = max(retired, link["last_id"])
            continue
        sealed[link["last_id"]] = link
        previous_end = max((item["last_id"] for item in live), default=retired)
        if ledger == "run" and live and link["first_id"] != previous_end + 1:
            findings.append(f"{where} does not start where the link before it ended "
                            f"({previous_end}): a range was sealed twice or skipped")
        live.append(link)
    return [link for link in live if link["last_id"] > retired], retired


def _tail_findings(conn, frontier: int) -> list[str]:
    """The run chain must reach as far as the tally folded: every fold seals what it moves (an
    empty range excepted), so run rows at or below the watermark that no link covers mean links
    were removed, or a fold ran without sealing."""
    row = conn.execute(
        f"SELECT w.folded_through, pg_catalog.count(r.run_id), pg_catalog.min(r.run_id),"
        f"       pg_catalog.max(r.run_id)"
        f"  FROM {WATERMARK} AS w"
        f"  LEFT JOIN {LEDGERS['run'][0]} AS r"
        f"    ON r.run_id > %s AND r.run_id <= w.folded_through"
        f" GROUP BY w.folded_through", (frontier,)).fetchone()
    if row is None:
        return []
    folded, unsealed, first, last = row
    if unsealed:
        return [f"run ledger: {unsealed} row(s) (ids {first}-{last}) lie under the tally's "
                f"watermark ({folded}) but past the last link of the run chain ({frontier}): "
                "links were removed from the end of the chain"]
    if frontier > folded:
        return [f"run ledger: the run chain reaches id {frontier}, past the tally's watermark "
                f"({folded}): the watermark was moved back"]
    return []


def _gate_run_findings(conn) -> list[str]:
    """Every applied run of the gate protocol was written with its transition (and a retirement
    removes both): an applied gate run without one means the transition ledger lost rows."""
    orphans = [row[0] for row in conn.execute(
        f"SELECT r.run_id FROM {LEDGERS['run'][0]} AS r"
        f" WHERE r.command_name IN ('dot_iu_gate_open', 'dot_iu_gate_close',"
        f"                          'dot_iu_gate_watchdog')"
        f"   AND r.run_status = 'applied'"
        f"   AND NOT EXISTS (SELECT 1 FROM {LEDGERS['transition'][0]} AS t"
        f"                    WHERE t.run_id = r.run_id)"
        f" ORDER BY r.run_id LIMIT 21").fetchall()]
    if not orphans:
        return []
    shown = ", ".join(str(run_id) for run_id in orphans[:20]) + (", ..." if len(orphans) > 20
                                                                   else "")
    return [f"run ledger: applied gate run(s) {shown} have no transition: transitions were "
            "removed (or the run rows were written behind the gate protocol)"]


def section(conn, connect=None, workers: int = 2, expected_heads: tuple[str, ...] = ()) -> dict:
    exists = conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (SEALS,)).fetchone()[0]
    if not exists:
        return {"ok": True, "strict_ok": True, "installed": False, "findings": [],
                "summary": "not installed (a revision before 0012_ledger_seals)"}
    started = time.monotonic()
    links = _links(conn)
    findings: list[str] = []
    heads, facts = {}, {}
    checked_rows = 0
    for ledger, (table, key) in LEDGERS.items():
        mine = [link for link in links if link["ledger"] == ledger]
        live, retired = _walk_chain(ledger, mine, findings)
        heads[ledger] = ({"seal_id": mine[-1]["seal_id"], "seal_sha256": mine[-1]["seal_sha256"]}
                         if mine else None)
        ids = [link["seal_id"] for link in live]
        results: dict[int, tuple[int, str]] = {}
        if connect is not None and workers > 1 and len(ids) > 1:
            def work(part, ledger=ledger):
                with connect() as extra:
                    return _recompute(extra, ledger, part)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for part in pool.map(work, _chunks(ids, workers)):
                    results.update(part)
        elif ids:
            results = _recompute(conn, ledger, ids)
        bad = []
        for link in live:
            count, digest = results[link["seal_id"]]
            checked_rows += count
            if digest != link["rows_sha256"]:
                if count < link["row_count"]:
                    what = f"{link['row_count'] - count} row(s) deleted"
                elif count > link["row_count"]:
                    what = f"{count - link['row_count']} row(s) inserted"
                else:
                    what = "row(s) updated"
                bad.append(f"{ledger} ledger: ids {link['first_id']}-{link['last_id']} (link "
                           f"{link['seal_id']}) no longer match their seal: {what} "
                           f"({count} rows now, {link['row_count']} sealed)")
        if bad:
            findings.append(bad[0] + (f"; and {len(bad) - 1} more range(s)" if len(bad) > 1
                                      else ""))
        frontier = max((link["last_id"] for link in mine if link["action"] == "seal"),
                       default=retired)
        first = min((link["first_id"] for link in live), default=frontier + 1)
        below, past = conn.execute(
            f"SELECT pg_catalog.count(*) FILTER (WHERE r.{key} < %s),"
            f"       pg_catalog.count(*) FILTER (WHERE r.{key} > %s)"
            f"  FROM {table} AS r WHERE r.{key} < %s OR r.{key} > %s",
            (first, frontier, first, frontier)).fetchone()
        if below:
            findings.append(f"{ledger} ledger: {below} row(s) below the first sealed or retired "
                            f"range (ids under {first}): written after the fact")
        if ledger == "transition":
            unsealed = [row[0] for row in conn.execute(
                f"SELECT t.transition_id FROM {table} AS t WHERE t.transition_id > %s"
                f"   AND NOT EXISTS (SELECT 1 FROM {SEALS} AS s"
                f"        WHERE s.ledger = 'transition' AND s.action = 'seal'"
                f"          AND t.transition_id BETWEEN s.first_id AND s.last_id)"
                f" ORDER BY 1 LIMIT 20", (retired,)).fetchall()]
            if unsealed:
                findings.append(f"transition ledger: transition(s) {unsealed} were written "
                                "without their seal (the seal trigger was bypassed)")
        facts[ledger] = {"links": len(mine), "sealed_through": frontier,
                         "retired_through": retired, "rows_past_frontier": past}
    findings += _tail_findings(conn, facts["run"]["sealed_through"])
    findings += _gate_run_findings(conn)
    chain = {link["seal_sha256"] for link in links}
    for head in expected_heads:
        if head not in chain:
            findings.append(f"recorded chain head {head[:16]}... is not in the chain: the chain "
                            "was rewritten since it was recorded")
    seconds = time.monotonic() - started
    head_text = "; ".join(f"{ledger} head {value['seal_sha256'] if value else '(none)'}"
                          for ledger, value in heads.items())
    summary = (f"{facts['run']['links']} run link(s), {facts['transition']['links']} transition "
               f"link(s); {checked_rows} sealed row(s) recomputed in {seconds:.1f}s; "
               f"{facts['run']['rows_past_frontier']} run row(s) past the sealed frontier")
    return {
        "ok": not findings,
        "strict_ok": True,
        "installed": True,
        "heads": heads,
        "ledgers": facts,
        "rows_checked": checked_rows,
        "seconds": round(seconds, 3),
        "summary": summary,
        "lines": [f"chain heads (record them elsewhere): {head_text}"],
        "findings": findings,
    }
