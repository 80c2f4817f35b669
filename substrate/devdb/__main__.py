"""``python -m substrate.devdb up|down|url|status``: the same as ``substrate db ...``."""

from __future__ import annotations

import argparse
import sys

from substrate.devdb import cli

parser = argparse.ArgumentParser(prog="python -m substrate.devdb")
cli.register(parser)
args = parser.parse_args()
sys.exit(args.handler(args))
