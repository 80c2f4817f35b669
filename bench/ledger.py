"""Filling a big run ledger fast, and sealing it the way the tally's folds would.

``append`` writes rows ``low .. high`` with one ``INSERT ... SELECT generate_series`` as the
server's superuser (no logger: a plain INSERT at 0009 or later writes nothing for the tally).
The rows look like the logger's: the catalogued commands (but the package's own), a mix of
the valid (mode, status) pairs, the 9-gate snapshot, increasing created_at. Only the columns
every revision from 0003 on has are written, so the same rows go into a ledger at 0009 or at
head (later columns keep their defaults).

``seal`` chains the rows ``first .. last`` into the run ledger's seal chain in links of
``LINK`` ids, as the folds make them in steady state (a fold runs on about one run in 1024 and
seals what the fold before it recorded); ``fn_dot_iu_command_run_tally_rebuild()`` then finds
them sealed and only recounts. Sealing first matters: the rebuild seals everything past the
chain as ONE link, and a link of more than about two million rows exceeds PostgreSQL's 1 GB
string limit.
"""

from __future__ import annotations

import time

CHUNK = 1_000_000
LINK = 1024
REBUILD = "SELECT public.fn_dot_iu_command_run_tally_rebuild()"
SNAPSHOT = (
    '{"iu_core.composer_enabled": "false", "iu_core.delivery_enabled": "false", '
    '"iu_core.operator_runtime_enabled": "false", "iu_core.structure_ops_enabled": "false", '
    '"iu_core.three_axis_auto_refresh_enabled": "false", "iu_core.vector_sync_enabled": '
    '"false", "iu_enact.allow_no_review_decision": "false", "queue.dlq.replay_enabled": '
    '"false", "queue.job_substrate.enabled": "false"}'
)
# (mode, status) with weights: mostly successful plan/apply/verify, some refusals and failures.
PAIRS = (
    [("plan", "planned")] * 6
    + [("apply", "applied")] * 5
    + [("verify", "verified")] * 4
    + [("apply", "refused")] * 2
    + [("apply", "failed"), ("plan", "refused"), ("verify", "failed")]
)
APPEND = """
INSERT INTO public.dot_iu_command_run
       (command_name, run_mode, run_status, mutating, actor, params_digest, gate_snapshot,
        evidence, created_at)
SELECT (%(names)s::text[])[1 + (i * 7919) %% %(n_names)s],
       (%(modes)s::text[])[1 + (i * 31) %% %(n_pairs)s],
       (%(statuses)s::text[])[1 + (i * 31) %% %(n_pairs)s],
       true, 'bench', md5(i::text), %(snapshot)s::jsonb, '{}'::jsonb,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 millisecond'
  FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS i"""
SEAL = """
DO $seal$
DECLARE
    v_from bigint := %(first)s;
BEGIN
    WHILE v_from <= %(last)s LOOP
        PERFORM public.fn_dot_iu_ledger_seal('run', v_from, LEAST(v_from + %(link)s - 1, %(last)s));
        v_from := v_from + %(link)s;
    END LOOP;
END
$seal$"""


def command_names(conn) -> list[str]:
    """The catalogued commands the bulk rows name: all but the package's own (the gate
    protocol's and the lease break), whose rows only the package's functions write, each with
    its transition; verify reports such a row without one."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT command_name FROM public.dot_iu_command_catalog"
            " WHERE command_name NOT LIKE 'dot\\_iu\\_gate\\_%'"
            " AND command_name <> 'dot_iu_runtime_lease_break' ORDER BY 1"
        )
    ]


def append(conn, names: list[str], low: int, high: int) -> None:
    conn.execute(
        APPEND,
        {
            "names": names,
            "n_names": len(names),
            "modes": [m for m, _ in PAIRS],
            "statuses": [s for _, s in PAIRS],
            "n_pairs": len(PAIRS),
            "snapshot": SNAPSHOT,
            "low": low,
            "high": high,
        },
    )


def grow(conn, names: list[str], have: int, want: int) -> float:
    """Bulk-append rows have+1 .. want in chunks; returns the seconds it took."""
    start = time.perf_counter()
    for low in range(have + 1, want + 1, CHUNK):
        append(conn, names, low, min(low + CHUNK - 1, want))
    return time.perf_counter() - start


def seal(conn, first: int, last: int, link: int = LINK) -> float:
    """Seal run ids first .. last in links of ``link`` ids (head only); returns the seconds."""
    start = time.perf_counter()
    if last >= first:
        # The DO block's text is built here: a DO statement takes no parameters.
        conn.execute(SEAL % {"first": int(first), "last": int(last), "link": int(link)})
    return time.perf_counter() - start


def sealed_through(conn) -> int:
    return conn.execute(
        "SELECT coalesce(max(last_id), 0) FROM public.dot_iu_ledger_seal WHERE ledger = 'run'"
    ).fetchone()[0]


def vacuum(conn, *tables: str) -> None:
    for table in tables:
        conn.execute(f"VACUUM ANALYZE public.{table}")
