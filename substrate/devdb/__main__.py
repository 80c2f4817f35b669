"""``python -m substrate.devdb up|down|url|status``: the same as ``substrate db ...``."""

from __future__ import annotations

import argparse
import sys

from substrate.devdb import cli

parser = argparse.ArgumentParser(prog="python -m substrate.devdb")
cli.register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(["db", *sys.argv[1:]])
sys.exit(args.handler(args))
