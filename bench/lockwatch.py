"""Who the logger clients wait for while an upgrade runs (item 6).

A thread samples ``pg_stat_activity`` every ``INTERVAL`` seconds on a connection of its own:
every pgbench backend waiting on a heavyweight lock, the relation and mode it waits for, and
the statement of a backend blocking it (``pg_blocking_pids``). Each distinct (relation, mode,
blocking statement) is counted in samples, with the longest run of consecutive samples in which
some logger waited on it, so a stall can be named: the lock and the statement that held it.
"""

from __future__ import annotations

import threading

import psycopg

INTERVAL = 0.05
WAITING = """
SELECT coalesce(l.relation::regclass::text, l.locktype) AS waits_for, l.mode,
       left(regexp_replace(coalesce((SELECT b.query FROM pg_catalog.pg_stat_activity AS b
                                      WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid))
                                      ORDER BY b.backend_start LIMIT 1), '?'),
                           '\\s+', ' ', 'g'), 160) AS blocker
  FROM pg_catalog.pg_stat_activity AS a
  JOIN pg_catalog.pg_locks AS l ON l.pid = a.pid AND NOT l.granted
 WHERE a.application_name = 'pgbench' AND a.datname = current_database()
"""


class LockWatch:
    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self.stop_event = threading.Event()
        self.seen: dict[tuple[str, str, str], dict] = {}
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SET application_name = 'bench lockwatch'")
            running: dict[tuple[str, str, str], int] = {}
            while not self.stop_event.wait(INTERVAL):
                now = {tuple(row) for row in conn.execute(WAITING).fetchall()}
                for key in now:
                    entry = self.seen.setdefault(key, {"samples": 0, "longest_samples": 0})
                    entry["samples"] += 1
                    running[key] = running.get(key, 0) + 1
                    entry["longest_samples"] = max(entry["longest_samples"], running[key])
                for key in list(running):
                    if key not in now:
                        del running[key]

    def stop(self) -> list[dict]:
        """The waits seen, most sampled first (at most 5), with the longest wait in seconds."""
        self.stop_event.set()
        self.thread.join(timeout=10)
        ranked = sorted(self.seen.items(), key=lambda item: -item[1]["samples"])[:5]
        return [
            {"waits_for": waits_for, "mode": mode, "blocker": blocker,
             "samples": entry["samples"],
             "longest_s": round(entry["longest_samples"] * INTERVAL, 2)}
            for (waits_for, mode, blocker), entry in ranked
        ]
