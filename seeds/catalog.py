"""Catalog rows as plain dicts: their columns, how two sets of rows differ, and the live table.

A row is ``{column: value}`` over ``COLUMNS``. The registry, the union of the seed revisions and
the live ``public.dot_iu_command_catalog`` are all compared as ``{command_name: row}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CATALOG_TABLE = "public.dot_iu_command_catalog"
# Every column a seed revision writes, in table order (created_at is the table's own).
COLUMNS = (
    "command_name",
    "category",
    "mutating",
    "reversible",
    "target_function",
    "inverse_command",
    "description",
    "required_gates",
)
# The columns the rows of each seed revision format carry: format 1 predates required_gates
# (0013_runtime_substrate), whose rows read as the column's default.
FORMAT_COLUMNS = {1: COLUMNS[:7], 2: COLUMNS}
DEFAULTS: dict[str, object] = {"required_gates": []}
# The columns the live catalog must match the registry on: all but the description.
LOCKED_FIELDS = tuple(column for column in COLUMNS if column != "description")

Rows = dict[str, dict[str, object]]


@dataclass(frozen=True)
class Difference:
    """One command on which two row sets disagree."""

    command_name: str
    kind: str  # "missing" (only wanted), "extra" (only had) or "differs"
    fields: dict[str, tuple[object, object]] = field(default_factory=dict)  # name -> (have, want)

    def describe(self, have: str, want: str) -> str:
        if self.kind == "missing":
            return f"{self.command_name}: in {want}, missing from {have}"
        if self.kind == "extra":
            return f"{self.command_name}: in {have}, not in {want}"
        parts = [
            f"{name} {old!r} in {have}, {new!r} in {want}"
            for name, (old, new) in self.fields.items()
        ]
        return f"{self.command_name}: " + "; ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {
            "command_name": self.command_name,
            "kind": self.kind,
            "fields": {
                name: {"have": old, "want": new} for name, (old, new) in self.fields.items()
            },
        }


def differences(have: Rows, want: Rows, fields: tuple[str, ...] = COLUMNS) -> list[Difference]:
    """How ``have`` differs from ``want`` on ``fields``, one entry per command, sorted by name."""
    found = []
    for name in sorted(set(have) | set(want)):
        if name not in have:
            found.append(Difference(name, "missing"))
        elif name not in want:
            found.append(Difference(name, "extra"))
        else:
            changed = {
                column: (have[name].get(column), want[name].get(column))
                for column in fields
                if have[name].get(column) != want[name].get(column)
            }
            if changed:
                found.append(Difference(name, "differs", changed))
    return found


def fetch_catalog(conn) -> Rows | None:
    """The live catalog as rows, or None when the table does not exist. ``conn``: psycopg."""
    exists = conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (CATALOG_TABLE,))
    if not exists.fetchone()[0]:
        return None
    has_gates = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = %s::regclass"
        " AND attname = 'required_gates' AND NOT attisdropped)", (CATALOG_TABLE,)).fetchone()[0]
    columns = [column if column != "required_gates" or has_gates
               else "'{}'::text[] AS required_gates" for column in COLUMNS]
    cursor = conn.execute(f"SELECT {', '.join(columns)} FROM {CATALOG_TABLE} ORDER BY command_name")
    return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()}
