"""Released history is locked: ``make check-history`` and ``make lock-history``.

``alembic/history.lock`` holds, for every released revision, the SHA-256 of its file, of its
upgrade and downgrade SQL rendered with default options (what ``alembic upgrade --sql`` prints
for it, and what ``alembic/env.py`` records as its checksum), and of every file it reads while it
renders: function and view versions (``sql_functions/``, ``sql_views/``) and the revision
helpers it imports (``alembic/helpers/``). The files a revision reads are found, not declared:
rendering runs under an audit hook that sees every file Python opens, and the revision module's
imports are followed to their files. One line per fact, sorted, so a change to the lock reads as
a short diff in review::

    <revision> file <path> <sha256>
    <revision> upgrade - <sha256>
    <revision> downgrade - <sha256>
    <revision> reads <path> <sha256>

``check`` (part of ``make test`` and CI) re-computes every line and fails, naming the file and the
revision, on any difference ("released revisions are immutable: add a new version and a new
revision"), and on a revision the lock does not hold yet. ``lock`` is the deliberate step that
releases new revisions: it adds the revisions the lock lacks and never rewrites a locked line;
``lock --relock REVISION`` re-locks the head revision only, for a change made before it was
released (docs/maintaining.md). Exit status: 0 clean, 1 a finding, 2 could not check.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from substrate.review.tree import PROJECT_ROOT, Tree

LOCK_NAME = "alembic/history.lock"
IMMUTABLE = "released revisions are immutable: add a new version and a new revision"
HEADER = (
    "# Released history, locked: make check-history recomputes every line; make lock-history\n"
    "# adds new revisions and never rewrites a line (docs/maintaining.md).\n"
    "# <revision> file|upgrade|downgrade|reads <path or -> <sha256>\n"
)
_reading: list[set[Path]] = []  # the open files recorded while a render runs (a stack)
_hooked = False


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _reading and isinstance(args[0], (str, Path)):
        _reading[-1].add(Path(args[0]).resolve())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, order=True)
class Line:
    revision: str
    kind: str  # file, upgrade, downgrade, reads
    path: str  # '-' for upgrade and downgrade
    sha256: str

    def text(self) -> str:
        return f"{self.revision} {self.kind} {self.path} {self.sha256}"


def _project_file(path: Path, root: Path) -> bool:
    """A file of the project itself: under the root, not in a hidden folder (.venv, .pg) or a
    cache."""
    if not path.is_relative_to(root):
        return False
    parts = path.relative_to(root).parts
    return not any(part.startswith(".") or part in ("__pycache__", "site-packages")
                   for part in parts[:-1])


def _module_files(module: types.ModuleType, root: Path) -> set[Path]:
    """Files of the project's own modules a revision imports (the revision helpers)."""
    found = set()
    for value in vars(module).values():
        owner = value if isinstance(value, types.ModuleType) else sys.modules.get(
            getattr(value, "__module__", "") or "")
        path = getattr(owner, "__file__", None)
        if path and _project_file(Path(path).resolve(), root) and owner is not module:
            found.add(Path(path).resolve())
    return found


def revision_lines(tree: Tree, revision: str, root: Path) -> list[Line]:
    """Every lock line of one revision, computed now."""
    from substrate.review.checksums import render_step

    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    module = tree.module(revision)
    path = tree.path(revision).resolve()
    lines = [Line(revision, "file", str(path.relative_to(root)), _sha256(path.read_bytes()))]
    reads: set[Path] = set(_module_files(module, root))
    for direction in ("upgrade", "downgrade"):
        _reading.append(set())
        try:
            sql = render_step(module, direction)
        finally:
            reads |= _reading.pop()
        lines.append(Line(revision, direction, "-", _sha256(sql.encode())))
    for read in sorted(reads):
        if read == path or not _project_file(read, root):
            continue
        lines.append(Line(revision, "reads", str(read.relative_to(root)),
                          _sha256(read.read_bytes())))
    return lines


def compute(tree: Tree, root: Path) -> dict[str, list[Line]]:
    """revision -> its lines, for every revision of the tree, base first."""
    return {revision: revision_lines(tree, revision, root)
            for revision in tree.applied(tree.head())}


def read_lock(path: Path) -> dict[str, list[Line]]:
    locked: dict[str, list[Line]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        parts = raw.split(" ")
        if len(parts) != 4:
            raise ValueError(f"{path.name}:{number}: expected <revision> <kind> <path> <sha256>")
        locked.setdefault(parts[0], []).append(Line(*parts))
    return locked


def write_lock(path: Path, locked: dict[str, list[Line]], order: list[str]) -> None:
    body = [line.text() for revision in order for line in locked[revision]]
    path.write_text(HEADER + "\n".join(body) + "\n")


def findings(now: dict[str, list[Line]], locked: dict[str, list[Line]]) -> list[str]:
    """What differs between the tree and the lock, one sentence per difference."""
    out = []
    for revision, lines in now.items():
        if revision not in locked:
            out.append(f"{revision}: not in {LOCK_NAME}; release it with `make lock-history` "
                       "once it is final")
            continue
        have = {(line.kind, line.path): line.sha256 for line in lines}
        want = {(line.kind, line.path): line.sha256 for line in locked[revision]}
        for key in sorted(set(have) | set(want)):
            kind, path = key
            if have.get(key) == want.get(key):
                continue
            if kind == "file":
                what = f"{path}: the file of released revision {revision} changed"
            elif kind in ("upgrade", "downgrade"):
                what = f"{revision}: its rendered {kind} SQL changed"
            elif key not in have:
                what = f"{path}: released revision {revision} no longer reads it"
            elif key not in want:
                what = f"{path}: released revision {revision} now reads it"
            else:
                what = f"{path}: a file released revision {revision} reads changed"
            out.append(f"{what}: {IMMUTABLE}")
    for revision in sorted(set(locked) - set(now)):
        out.append(f"{revision}: in {LOCK_NAME} but not in the tree (a released revision was "
                   f"deleted): {IMMUTABLE}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m substrate.review.history",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("check", "lock"))
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT,
                        help="the project tree (alembic.ini, alembic/, sql_functions/, ...)")
    parser.add_argument("--relock", metavar="REVISION",
                        help="lock: re-lock this revision; only the head, before its release")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    lock = root / LOCK_NAME
    try:
        tree = Tree(root / "alembic.ini")
        now = compute(tree, root)
        locked = read_lock(lock) if lock.exists() else {}
    except Exception as error:  # a revision that cannot load or render: cannot check
        print(f"history: cannot check: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    if args.action == "check":
        problems = findings(now, locked)
        for problem in problems:
            print(f"history: {problem}")
        if problems:
            print(f"history: FAILED, {len(problems)} finding(s)")
            return 1
        print(f"history: ok, {len(now)} released revision(s) unchanged ({LOCK_NAME})")
        return 0
    if args.relock:
        if args.relock != tree.head():
            print(f"history: --relock {args.relock}: only the head revision ({tree.head()}) may "
                  "be re-locked, and only before it is released", file=sys.stderr)
            return 2
        locked[args.relock] = now[args.relock]
        print(f"history: re-locked {args.relock}")
    added = [revision for revision in now if revision not in locked]
    for revision in added:
        locked[revision] = now[revision]
        print(f"history: locked {revision}")
    stale = findings(now, {revision: locked[revision] for revision in now if revision in locked})
    write_lock(lock, locked, [revision for revision in now if revision in locked]
               + sorted(set(locked) - set(now)))
    if stale:
        for problem in stale:
            print(f"history: {problem}")
        return 1
    if not added and not args.relock:
        print(f"history: nothing to lock; {len(now)} revision(s) already in {LOCK_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
