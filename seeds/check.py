"""``python -m seeds.check``: the registry and the seed revisions must agree (``make
check-seeds``), offline.

The registry is well formed, every seed revision is exactly what the generator renders, and the
registry equals the union of the rows the seed revisions deliver. (A migrated database's
catalog is checked against the seed revisions by ``substrate drift`` and against the committed
schema snapshot by ``substrate verify``.)
Exit 0 when everything agrees, 1 on any finding, 2 when the check could not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seeds.lock import DEFAULT_VERSIONS, revision_findings
from seeds.registry import DOT_COMMANDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seeds.check", description=__doc__)
    parser.add_argument("--versions", type=Path, default=DEFAULT_VERSIONS)
    args = parser.parse_args(argv)
    if not args.versions.is_dir():
        print(f"check-seeds: {args.versions}: not a directory", file=sys.stderr)
        return 2

    findings = revision_findings(args.versions, DOT_COMMANDS)
    for finding in findings:
        print(f"check-seeds: {finding}")
    if findings:
        print(f"check-seeds: FAILED, {len(findings)} finding(s)")
        return 1
    print(f"check-seeds: ok, {len(DOT_COMMANDS)} commands; registry and seed revisions agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
