"""The server's own pgbench, as items 1 and 6 drive it (4 clients, 2 threads, a custom script).

``tps``: one timed run, its transactions per second. ``Background``: a run left going while
something else happens (an upgrade), every transaction logged (``--log``: client, completion
time, latency), ended by SIGALRM, which pgbench takes as the end of its ``-T`` (it finishes
cleanly and flushes its logs). A call that fails with a deadlock or serialization error is
logged as such and the client carries on (``--failures-detailed``); any other error ends that
client, which pgbench reports as aborted. A failed call's latency is not logged: it is taken as
the time since the same client's previous call ended (pgbench starts the next call at once).
"""

from __future__ import annotations

import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common import Server

CLIENTS = 4
THREADS = 2
TPS = re.compile(r"^tps = ([0-9.]+) \((?:without|excluding)", re.MULTILINE)
LONG_RUN_SECONDS = 7200


def _argv(server: Server, dbname: str, script: Path, seconds: int, mode: str) -> list[str]:
    return [
        server.tool("pgbench"),
        "-n",
        "-c",
        str(CLIENTS),
        "-j",
        str(THREADS),
        "-T",
        str(seconds),
        "-M",
        mode,
        "-f",
        str(script),
    ]


def tps(server: Server, dbname: str, script: Path, seconds: int, mode: str) -> float:
    argv = _argv(server, dbname, script, seconds, mode) + [server.conninfo(dbname)]
    result = subprocess.run(argv, capture_output=True, text=True)
    found = TPS.search(result.stdout)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"pgbench {script.name}: {result.stdout}{result.stderr}")
    return float(found.group(1))


@dataclass(frozen=True)
class Call:
    """One logged transaction: which client, when it started and ended (epoch seconds), and
    'ok' or the failure pgbench logged (deadlock, serialization)."""

    client: int
    start: float
    end: float
    status: str

    @property
    def latency(self) -> float:
        return self.end - self.start


class Background:
    """pgbench running the script until ``stop``; its per-transaction logs in ``folder``."""

    def __init__(self, server: Server, dbname: str, script: Path, folder: Path,
                 mode: str = "simple"):
        self.prefix = folder / "pgbench"
        argv = _argv(server, dbname, script, LONG_RUN_SECONDS, mode) + [
            "--log",
            "--log-prefix",
            str(self.prefix),
            "--failures-detailed",
            "--verbose-errors",
            server.conninfo(dbname),
        ]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stdout = self.stderr = ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGALRM)
        self.stdout, self.stderr = self.process.communicate(timeout=120)

    def aborted(self) -> list[str]:
        """pgbench's lines about clients that stopped on an error."""
        return [line for line in self.stderr.splitlines() if "aborted" in line]

    def errors(self) -> list[str]:
        """pgbench's error lines (--verbose-errors), deduplicated, at most 10."""
        seen: list[str] = []
        for line in self.stderr.splitlines():
            text = re.sub(r"^client \d+ ", "client N ", line.strip())
            if ("ERROR" in text or "error" in text) and text not in seen:
                seen.append(text)
        return seen[:10]

    def calls(self) -> list[Call]:
        found: list[Call] = []
        for path in sorted(self.prefix.parent.glob(self.prefix.name + "*")):
            previous_end: dict[int, float] = {}
            for line in path.read_text().splitlines():
                fields = line.split()
                if len(fields) < 6:
                    continue
                client = int(fields[0])
                end = int(fields[4]) + int(fields[5]) / 1e6
                if fields[2].isdigit():
                    start, status = end - int(fields[2]) / 1e6, "ok"
                else:
                    start, status = previous_end.get(client, end), fields[2]
                previous_end[client] = end
                found.append(Call(client, start, end, status))
        return sorted(found, key=lambda call: call.start)
