"""`make lint`'s SQL half: squawk on the upgrade SQL exactly as a DBA receives it.

The tree's ``alembic upgrade base:head --sql`` output is split into its per-revision
transactions (``BEGIN;`` ... ``COMMIT;``, named by their ``-- Running upgrade`` line; a step
that runs statements outside a transaction keeps them, and its next transaction, in its part),
because squawk judges a file as one migration. Each silenced rule is silenced for ONE
statement, with a one-line reason, in ``lint/squawk-ignores.txt``::

    <revision> | <rule> | <the line squawk flags, or its start> | <reason>

The line is matched after its leading spaces (a column inside a CREATE TABLE is a line of
that statement). This module inserts ``-- squawk-ignore <rule> -- <reason>`` just before it in
the copy handed to squawk (squawk applies an ignore to the line that follows it); the
revisions (and the SQL a DBA runs, and its checksums) are untouched. An entry whose line is not
found, or is found more than once, is an error, so the list cannot go stale or silence more
than it says. Exit status: squawk's (0 clean), 2 when the SQL could
not be rendered or an entry is wrong.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from substrate.review.tree import PROJECT_ROOT, Tree

IGNORES = PROJECT_ROOT / "lint" / "squawk-ignores.txt"
PG_VERSION = "15.0"  # the oldest major production may run (SPEC 1: 16 in production, 15+)
_RUNNING = re.compile(r"^-- Running upgrade .*-> (\S+)")


class LintError(RuntimeError):
    """The SQL could not be prepared for squawk; the message says why."""


@dataclass(frozen=True)
class Ignore:
    revision: str
    rule: str
    statement: str
    reason: str
    line: int


def read_ignores(path: Path = IGNORES) -> list[Ignore]:
    entries = []
    if not path.exists():
        return entries
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [part.strip() for part in raw.split(" | ")]
        if len(parts) != 4 or not all(parts):
            raise LintError(f"{path.name}:{number}: expected "
                            "<revision> | <rule> | <statement start> | <reason>")
        entries.append(Ignore(*parts, line=number))
    return entries


def render_upgrade(tree: Tree) -> str:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(tree.ini), "upgrade", "base:head", "--sql"],
        capture_output=True, text=True, env=env, cwd=tree.ini.parent,
    )
    if result.returncode != 0:
        raise LintError(f"alembic upgrade base:head --sql failed:\n{result.stderr[-2000:]}")
    return result.stdout


def split(script: str) -> list[tuple[str, list[str]]]:
    """(revision, lines) per transaction; lines before the first one join the first."""
    chunks: list[tuple[str, list[str]]] = []
    pending: list[str] = []
    current: list[str] | None = None
    name = None
    for line in script.splitlines():
        if line == "BEGIN;" and current is None:
            current, name = pending + [line], None
            pending = []
            continue
        if current is None:
            pending.append(line)
            continue
        current.append(line)
        match = _RUNNING.match(line)
        if match and name is None:
            name = match.group(1)
        if line == "COMMIT;":
            if name is None and chunks:
                # A step's own second transaction, after statements that ran outside one
                # (CREATE INDEX CONCURRENTLY, revision_helpers_v2): the same revision.
                chunks[-1][1].extend(current)
            else:
                chunks.append((name or f"transaction{len(chunks) + 1}", current))
            current = None
    if current is not None or any(line.strip() for line in pending):
        raise LintError("the rendered SQL does not end with a COMMIT")
    return chunks


def annotate(chunks: list[tuple[str, list[str]]], ignores: list[Ignore]) -> None:
    """Insert each ignore before its one statement (in place); LintError when it is not one."""
    by_name = dict(chunks)
    for entry in ignores:
        lines = by_name.get(entry.revision)
        if lines is None:
            raise LintError(f"{IGNORES.name}:{entry.line}: no revision {entry.revision} in the "
                            "rendered SQL")
        found = [i for i, line in enumerate(lines) if line.lstrip().startswith(entry.statement)]
        if len(found) != 1:
            raise LintError(
                f"{IGNORES.name}:{entry.line}: {len(found)} lines of {entry.revision} start "
                f"with {entry.statement!r}; an entry silences exactly one statement")
        target = lines[found[0]]
        indent = target[: len(target) - len(target.lstrip())]
        lines.insert(found[0], f"{indent}-- squawk-ignore {entry.rule} -- {entry.reason}")


def squawk() -> str:
    found = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")
    if not Path(found).exists():
        raise LintError("squawk is not installed (pip install squawk-cli; make install does)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m substrate.review.sqllint", description=__doc__)
    parser.add_argument("--alembic-ini", help="the Alembic tree (default: the project's)")
    parser.add_argument("--keep", type=Path, help="write the annotated files here and keep them")
    args = parser.parse_args(argv)
    try:
        chunks = split(render_upgrade(Tree(args.alembic_ini)))
        annotate(chunks, read_ignores())
        binary = squawk()
    except LintError as error:
        print(f"sqllint: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="substrate-sqllint-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for number, (name, lines) in enumerate(chunks, 1):
            path = folder / f"{number:03d}_{name}.upgrade.sql"
            path.write_text("\n".join(lines) + "\n")
            files.append(str(path))
        result = subprocess.run([binary, "--pg-version", PG_VERSION, *files])
    if result.returncode == 0:
        print(f"sqllint: squawk found nothing in {len(files)} revision(s) "
              f"({len(read_ignores())} statement(s) silenced with a reason in lint/"
              f"{IGNORES.name})")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
