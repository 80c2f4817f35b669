"""``python -m seeds.generate``: write ONE seed revision for what the registry adds, changes or
removes relative to the rows all existing seed revisions deliver (``make seed-revision``).

With nothing to do it says so and writes nothing. It refuses a malformed registry, a history
that does not add up, and a versions folder with more than one head.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from seeds.changes import Changes, compute_changes
from seeds.history import HistoryError, delivered_rows, heads, read_versions
from seeds.lock import DEFAULT_VERSIONS, rendering_problems
from seeds.registry import DOT_COMMANDS, DotCommand, catalog_rows
from seeds.validate import registry_problems
from seeds.writer import render_revision, revision_id

DEFAULT_MESSAGE = "Seed catalog"
NUMBER_RE = re.compile(r"^([0-9]{4})_")


class GenerateError(Exception):
    """The generator cannot produce a revision; the message says why."""


@dataclass(frozen=True)
class Plan:
    revision: str
    down_revision: str | None
    changes: Changes
    text: str


def plan(
    versions: Path, commands: tuple[DotCommand, ...] = DOT_COMMANDS, message: str = DEFAULT_MESSAGE
) -> Plan | None:
    """The revision to write, or None when the seed revisions already deliver the registry."""
    if not Path(versions).is_dir():
        raise GenerateError(f"{versions}: not a directory")
    problems = registry_problems(commands)
    if problems:
        raise GenerateError("the registry is malformed:\n  " + "\n  ".join(problems))
    try:
        revisions = read_versions(versions)
        delivered = delivered_rows(revisions)
    except HistoryError as error:
        raise GenerateError("the seed history does not add up:\n  " + str(error)) from error
    problems = rendering_problems(revisions)
    if problems:
        raise GenerateError("seed revisions were edited:\n  " + "\n  ".join(problems))
    changes = compute_changes(delivered, catalog_rows(commands))
    if not changes:
        return None
    found = heads(revisions)
    if len(found) > 1:
        raise GenerateError(f"several heads ({', '.join(found)}): merge them first")
    down = found[0] if found else None
    numbers = [int(m.group(1)) for item in revisions if (m := NUMBER_RE.match(item.revision))]
    new_id = revision_id(max(numbers, default=0) + 1, message)
    if any(item.revision == new_id for item in revisions):
        raise GenerateError(f"revision {new_id} exists already")
    return Plan(new_id, down, changes, render_revision(new_id, down, message, changes))


def generate(
    versions: Path, commands: tuple[DotCommand, ...] = DOT_COMMANDS, message: str = DEFAULT_MESSAGE
) -> Path | None:
    """Write the planned revision into ``versions``; its path, or None when nothing to do."""
    planned = plan(versions, commands, message)
    return None if planned is None else write(planned, versions)


def write(planned: Plan, versions: Path) -> Path:
    path = Path(versions) / f"{planned.revision}.py"
    path.write_text(planned.text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seeds.generate", description=__doc__)
    parser.add_argument("--versions", type=Path, default=DEFAULT_VERSIONS)
    parser.add_argument("--message", default=DEFAULT_MESSAGE, help="revision title (slug source)")
    args = parser.parse_args(argv)
    try:
        planned = plan(args.versions, DOT_COMMANDS, args.message)
    except (GenerateError, ValueError) as error:
        print(f"seed-revision: {error}", file=sys.stderr)
        return 2
    if planned is None:
        count = len(DOT_COMMANDS)
        print(f"seed-revision: nothing to do; the seed revisions deliver the registry ({count}).")
        return 0
    path = write(planned, args.versions)
    print(f"seed-revision: wrote {path} ({planned.changes.summary()}).")
    for row in planned.changes.insert:
        print(f"  + {row['command_name']}")
    for change in planned.changes.update:
        print(f"  ~ {change['command_name']}: {', '.join(change['new'])}")
    for row in planned.changes.delete:
        print(f"  - {row['command_name']}")
    print("Review the rendered SQL with `make sql`, then commit the revision with the registry.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
