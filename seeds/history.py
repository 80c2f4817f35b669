"""Reads the versions folder without importing it: revision ids, their order, and seed rows.

Every revision file is parsed with ``ast``; a seed revision (``SEED_REVISION = True``) is read
through ``ast.literal_eval`` of its module-level ``SEED_INSERT``, ``SEED_UPDATE`` and
``SEED_DELETE``. ``delivered_rows()`` replays the seed revisions in revision order and returns
the rows they deliver together, refusing a history that does not add up.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from seeds.catalog import DEFAULTS, FORMAT_COLUMNS, Rows


class HistoryError(Exception):
    """The versions folder cannot be read as one consistent history."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SeedRows:
    """The literal rows one seed revision carries."""

    format: int
    insert: tuple[dict, ...]
    update: tuple[dict, ...]
    delete: tuple[dict, ...]
    sha256: str | None = None


@dataclass(frozen=True)
class RevisionFile:
    path: Path
    revision: str
    down_revisions: tuple[str, ...]
    message: str
    seed: SeedRows | None


def _assignments(tree: ast.Module) -> dict[str, ast.expr]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            found[target.id] = value
    return found


def read_revision(path: Path) -> RevisionFile:
    """One revision file's id, parents, message (first docstring line) and seed rows."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
        values = _assignments(tree)
        revision = ast.literal_eval(values["revision"])
        down = ast.literal_eval(values["down_revision"]) if "down_revision" in values else None
        seed = None
        if "SEED_REVISION" in values and ast.literal_eval(values["SEED_REVISION"]) is True:
            seed = SeedRows(
                format=ast.literal_eval(values["SEED_FORMAT"]),
                insert=tuple(ast.literal_eval(values["SEED_INSERT"])),
                update=tuple(ast.literal_eval(values["SEED_UPDATE"])),
                delete=tuple(ast.literal_eval(values["SEED_DELETE"])),
                sha256=ast.literal_eval(values["SEED_SHA256"]) if "SEED_SHA256" in values else None,
            )
    except (OSError, SyntaxError, KeyError, ValueError, TypeError) as error:
        raise HistoryError([f"{path.name}: cannot read as a revision ({error!r})"]) from error
    if down is None:
        parents = ()
    elif isinstance(down, str):
        parents = (down,)
    else:
        parents = tuple(down)
    docstring = ast.get_docstring(tree, clean=False) or ""
    return RevisionFile(path, revision, parents, docstring.split("\n", 1)[0], seed)


def read_versions(directory: Path) -> list[RevisionFile]:
    """Every revision in ``directory``, base first (parents before children, ties by id)."""
    revisions = [read_revision(path) for path in sorted(Path(directory).glob("*.py"))]
    by_id: dict[str, RevisionFile] = {}
    problems = []
    for item in revisions:
        if item.revision in by_id:
            problems.append(f"revision {item.revision} defined twice ({item.path.name})")
        by_id[item.revision] = item
    for item in revisions:
        for parent in item.down_revisions:
            if parent not in by_id:
                problems.append(f"{item.path.name}: down_revision {parent} does not exist")
    if problems:
        raise HistoryError(problems)

    ordered: list[RevisionFile] = []
    placed: set[str] = set()
    pending = sorted(by_id)
    while pending:
        ready = [rev for rev in pending if set(by_id[rev].down_revisions) <= placed]
        if not ready:
            raise HistoryError([f"revisions form a cycle: {', '.join(pending)}"])
        ordered.append(by_id[ready[0]])
        placed.add(ready[0])
        pending.remove(ready[0])
    return ordered


def heads(revisions: list[RevisionFile]) -> list[str]:
    """The revisions no other revision names as its parent."""
    parents = {parent for item in revisions for parent in item.down_revisions}
    return sorted(item.revision for item in revisions if item.revision not in parents)


def _row_problems(where: str, row: dict, complete: bool, columns: tuple[str, ...]) -> list[str]:
    keys = set(row)
    expected = set(columns)
    if complete and keys != expected:
        return [f"{where}: row keys {sorted(keys)} are not the catalog columns {sorted(expected)}"]
    if not keys <= expected:
        return [f"{where}: unknown columns {sorted(keys - expected)}"]
    return []


def apply_seed(rows: Rows, item: RevisionFile) -> list[str]:
    """Replay one seed revision onto ``rows`` (in place); the problems it runs into."""
    seed = item.seed
    name = item.path.name
    columns = FORMAT_COLUMNS.get(seed.format)
    if columns is None:
        return [f"{name}: unknown SEED_FORMAT {seed.format!r}"]

    def whole(row: dict) -> dict:
        """The row with the columns its format predates at their defaults."""
        return {**{column: DEFAULTS[column] for column in DEFAULTS if column not in row}, **row}

    problems = []
    for row in seed.insert:
        problems += _row_problems(f"{name} SEED_INSERT", row, True, columns)
        command = row.get("command_name")
        if command in rows:
            problems.append(f"{name}: inserts {command}, which an earlier seed revision delivers")
        else:
            rows[command] = whole(row)
    for change in seed.update:
        command = change.get("command_name")
        old, new = change.get("old", {}), change.get("new", {})
        problems += _row_problems(f"{name} SEED_UPDATE {command}", old, False, columns)
        if set(old) != set(new) or "command_name" in old:
            problems.append(f"{name}: update of {command} must name the same non-key fields")
        if command not in rows:
            problems.append(f"{name}: updates {command}, which no earlier seed revision delivers")
            continue
        stale = sorted(field for field in old if rows[command].get(field) != old[field])
        if stale:
            problems.append(f"{name}: updates {command} from old values that differ on {stale}")
        rows[command].update(new)
    for row in seed.delete:
        problems += _row_problems(f"{name} SEED_DELETE", row, True, columns)
        command = row.get("command_name")
        if rows.get(command) != whole(row):
            problems.append(f"{name}: deletes {command}, not as an earlier seed delivered it")
        rows.pop(command, None)
    return problems


def delivered_rows(revisions: list[RevisionFile]) -> Rows:
    """The union of the rows all seed revisions deliver, replayed in revision order."""
    rows: Rows = {}
    problems = []
    for item in revisions:
        if item.seed is not None:
            problems += apply_seed(rows, item)
    if problems:
        raise HistoryError(problems)
    return rows
