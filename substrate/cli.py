"""The `substrate` command: one sub-command per module, imported only when it runs.

``substrate --help`` lists every sub-command from ``COMMANDS`` without importing any of them;
``substrate <command> ...`` imports that command's module alone, whose ``register(parser)``
adds its arguments and a ``handler``. No database driver is imported to print help: commands
import psycopg, SQLAlchemy and Alembic inside their handlers.

Exit codes shared by every sub-command (``substrate.connect``): 0 clean, 1 a finding (drift,
unsafe gate, unresolved target in strict mode), 2 could not check (bad arguments, no database,
a malformed URL, an unreachable server).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module with register(parser), the one line `substrate --help` prints)
COMMANDS = {
    "db": ("substrate.devdb.cli", "the embedded PostgreSQL (up, down, url, status)"),
    "report": ("substrate.demo.report", "revision, owned objects, gates, ledger health"),
    "proof": ("substrate.demo.proof",
              "the original design's four-step proof, live, on a scratch database"),
    "verify": ("substrate.review.verify.cli",
               "inventory, catalog, targets, gate safety, derived state, privileges, seal "
               "chains, migration checksums"),
    "drift": ("substrate.review.drift",
              "a live database against what its recorded revision should contain"),
    "gates": ("substrate.gates.cli",
              "status, open, close and watchdog the gates (bounded gate protocol)"),
    "run": ("substrate.runtime.cli",
            "plan, apply, verify a catalogued command (operator runtime); reversal"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported and given its arguments."""
    parser = argparse.ArgumentParser(prog="substrate", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_)
        if name == command:
            importlib.import_module(module).register(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first argument that is not an option)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command(argv)).parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
