"""The `substrate` command: one sub-command per module, each registering itself.

Exit codes shared by every sub-command: 0 clean, 1 a finding (drift, unsafe gate, unresolved
target in strict mode), 2 could not check (bad arguments, unreachable database).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module exposes register(subparsers) and sets a `handler` default on its parser.
COMMAND_MODULES = (
    "substrate.devdb.cli",
    "substrate.demo.report",
    "substrate.review.verify.cli",
    "substrate.review.drift",
    "substrate.gates.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="substrate", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
