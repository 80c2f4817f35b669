"""The difference between the rows the seed revisions deliver and the rows the registry wants."""

from __future__ import annotations

from dataclasses import dataclass

from seeds.catalog import COLUMNS, Rows, differences


@dataclass(frozen=True)
class Changes:
    """What one new seed revision must do, each part sorted by command_name."""

    insert: tuple[dict, ...] = ()
    update: tuple[dict, ...] = ()  # {"command_name", "old": {field: value}, "new": {...}}
    delete: tuple[dict, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.insert or self.update or self.delete)

    def summary(self) -> str:
        return f"insert {len(self.insert)}, update {len(self.update)}, delete {len(self.delete)}"


def _ordered(row: dict) -> dict:
    return {column: row[column] for column in COLUMNS}


def compute_changes(delivered: Rows, wanted: Rows) -> Changes:
    """New rows to insert, changed fields to update, removed rows to delete."""
    insert, update, delete = [], [], []
    for difference in differences(delivered, wanted, COLUMNS):
        name = difference.command_name
        if difference.kind == "missing":
            insert.append(_ordered(wanted[name]))
        elif difference.kind == "extra":
            delete.append(_ordered(delivered[name]))
        else:
            fields = [column for column in COLUMNS if column in difference.fields]
            update.append(
                {
                    "command_name": name,
                    "old": {column: delivered[name][column] for column in fields},
                    "new": {column: wanted[name][column] for column in fields},
                }
            )
    return Changes(tuple(insert), tuple(update), tuple(delete))
