"""``python -m seeds.check``: the registry, the seed revisions and a catalog must agree.

Without ``--url``: the registry is well formed, every seed revision is exactly what the
generator renders, and the registry equals the union of the rows the seed revisions deliver.
With ``--url``: also the migrated database's catalog equals the registry on (command_name,
category, mutating, reversible, target_function, inverse_command).
Exit 0 when everything agrees, 1 on any finding, 2 when the check could not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seeds.lock import DEFAULT_VERSIONS, catalog_findings, revision_findings
from seeds.registry import DOT_COMMANDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seeds.check", description=__doc__)
    parser.add_argument("--versions", type=Path, default=DEFAULT_VERSIONS)
    parser.add_argument("--url", help="also check this migrated database's catalog")
    args = parser.parse_args(argv)
    if not args.versions.is_dir():
        print(f"check-seeds: {args.versions}: not a directory", file=sys.stderr)
        return 2

    findings = revision_findings(args.versions, DOT_COMMANDS)
    checked = "registry and seed revisions"
    url = args.url
    if url:
        import psycopg

        from substrate.connect import to_conninfo

        try:
            with psycopg.connect(to_conninfo(url), autocommit=True) as conn:
                findings += catalog_findings(conn, DOT_COMMANDS)
        except psycopg.Error as error:
            print(f"check-seeds: cannot check the catalog: {error}", file=sys.stderr)
            return 2
        checked += " and the catalog"
    for finding in findings:
        print(f"check-seeds: {finding}")
    if findings:
        print(f"check-seeds: FAILED, {len(findings)} finding(s)")
        return 1
    print(f"check-seeds: ok, {len(DOT_COMMANDS)} commands; {checked} agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
