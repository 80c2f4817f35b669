"""One ledger at head, grown step by step through the sizes that items 2 (views) and 7 (seals)
measure, so the ten-million-row ledger is built once.

At each size the ledger first grows to all but its last ``TAIL`` rows (``ledger.grow``), those
rows are sealed in links of 1,024 ids (``ledger.seal``, as the folds seal them), then
``fn_dot_iu_command_run_tally_rebuild()`` recounts the tally and puts its watermark at the last
of them (timed: what a full recount costs; it finds them sealed already) and the tables are
vacuumed and analyzed. The last ``TAIL`` rows go in after that, with no fold, so the views count
1,500 rows past the watermark from the ledger and the seal check finds them past the sealed
frontier: about what the logger's folds leave in steady state (between 1,024 and 2,048 rows).
"""

from __future__ import annotations

import time

import ledger
from common import Server, log, migrated, revisions

TAIL = 1500
TABLES = (
    "dot_iu_command_run",
    "dot_iu_command_run_tally",
    "dot_iu_command_run_tally_watermark",
    "dot_iu_ledger_seal",
)


class GrowingLedger:
    """A database at head (``dbname``) and the size its ledger has reached."""

    def __init__(self, server: Server, dbname: str):
        self.server = server
        self.dbname = dbname
        self.revision = migrated(server, dbname, revisions("head")["head"])
        self.conn = server.connect(dbname)
        self.names = ledger.command_names(self.conn)
        self.rows = 0

    def grow_to(self, size: int) -> dict:
        """Grow to ``size`` rows; returns what it took and where the watermark stands."""
        conn = self.conn
        log(f"ledger: growing to {size:,} rows")
        below = max(self.rows, size - TAIL)
        insert_seconds = ledger.grow(conn, self.names, self.rows, below)
        seal_seconds = ledger.seal(conn, ledger.sealed_through(conn) + 1, below)
        start = time.perf_counter()
        report = conn.execute(ledger.REBUILD).fetchone()[0]
        rebuild_seconds = time.perf_counter() - start
        assert report["runs"] == below, report
        ledger.vacuum(conn, *TABLES)
        ledger.append(conn, self.names, below + 1, size)
        self.rows = size
        tally_rows = conn.execute(
            "SELECT count(*) FROM public.dot_iu_command_run_tally").fetchone()[0]
        folded_through, past = conn.execute(
            "SELECT w.folded_through, (SELECT count(*) FROM public.dot_iu_command_run AS run"
            "                          WHERE run.run_id > w.folded_through)"
            "  FROM public.dot_iu_command_run_tally_watermark AS w"
        ).fetchone()
        assert past == size - below, (size, folded_through, past)
        return {
            "rows": size,
            "insert_seconds": insert_seconds,
            "seal_seconds": seal_seconds,
            "rebuild_seconds": rebuild_seconds,
            "rebuild_report": report,
            "tally_rows": tally_rows,
            "folded_through": folded_through,
            "rows_past_watermark": past,
        }

    def database_bytes(self) -> int:
        return self.conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]

    def close(self) -> None:
        self.conn.close()
        self.server.drop_database(self.dbname)
