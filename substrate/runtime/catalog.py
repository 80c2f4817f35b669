"""A command's catalog row and its target's signature, as the runtime role reads them
(docs/runtime.md).

One read-only transaction reads the catalog row (``public.dot_iu_command_catalog``), the
argument names of its target function (``pg_proc`` of exactly the catalogued signature,
resolved with ``to_regprocedure``), the binding of the two (``fn_dot_iu_command_binding``: an
apply names it and the database refuses it once either has changed) and, for plan and verify,
the gates as their readers see them (``public.v_dot_iu_gates``); when an apply is refused, the
lease as well (``public.v_dot_iu_runtime_lease``). The runtime role may read all of these; it
reads nothing else.

Parameter names are the target's argument names without the ``p_`` prefix IU Core gives them
(``p_collection_id`` is the parameter ``collection_id``); an unnamed argument is ``argN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from substrate.runtime.errors import CatalogError
from substrate.runtime.executors import Statement

CATALOG_ROW = Statement(
    "SELECT c.command_name, c.category, c.mutating, c.reversible, c.target_function,"
    " c.inverse_command, c.required_gates, p.proname IS NOT NULL AS resolves, p.pronargs,"
    " p.proargnames, p.proargmodes, p.provariadic <> 0 AS variadic, p.proretset AS returns_set,"
    " public.fn_dot_iu_command_binding(c.command_name) AS binding"
    " FROM public.dot_iu_command_catalog AS c"
    " LEFT JOIN pg_catalog.pg_proc AS p ON p.oid = pg_catalog.to_regprocedure(c.target_function)"
    " WHERE c.command_name = %s::text",
)
GATES = Statement(
    "SELECT g.gate_key, g.reads_open FROM public.v_dot_iu_gates AS g ORDER BY g.gate_key"
)
LEASE = Statement(
    "SELECT l.holder, l.epoch, l.held FROM public.v_dot_iu_runtime_lease AS l"
    " WHERE l.lease_name = %s::text"
)
TARGET = re.compile(r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\(([a-z0-9_ ,\[\]]*)\)")
_INPUT_MODES = ("i", "b")  # IN and INOUT; OUT and TABLE columns are not arguments


@dataclass(frozen=True)
class CatalogRow:
    """A catalog row, with what pg_proc says about its target (``arg_names`` is None when the
    target does not resolve; ``returns_set`` when it may return any number of rows) and the
    binding digest of the two (fn_dot_iu_command_binding)."""

    command_name: str
    category: str
    mutating: bool
    reversible: bool
    target_function: str
    inverse_command: str | None
    required_gates: tuple[str, ...]
    arg_names: tuple[str, ...] | None = None
    returns_set: bool = False
    binding: str | None = None

    @property
    def resolves(self) -> bool:
        return self.arg_names is not None


def catalog_statements(command: str) -> list[Statement]:
    """The read-only transaction that resolves ``command``: its row, then the gates."""
    return [Statement(CATALOG_ROW.sql, (command,)), GATES]


def apply_statements(command: str) -> list[Statement]:
    """The read-only transaction that resolves ``command`` for an apply: its row alone (an
    apply reads no gate here: apply_begin holds and checks them in the apply's own
    transaction, where the lease is taken too)."""
    return [Statement(CATALOG_ROW.sql, (command,))]


def diagnosis_statements(command: str, lease: str) -> list[Statement]:
    """The read-only transaction that says why apply_begin refused: the row, the gates, the
    lease."""
    return [*catalog_statements(command), Statement(LEASE.sql, (lease,))]


def parse_target(target_function: str) -> tuple[str, str, tuple[str, ...]]:
    """(schema, function, argument types) of a catalogued ``schema.fn(type, ...)``."""
    match = TARGET.fullmatch(target_function or "")
    if not match:
        raise CatalogError(f"target {target_function!r} is not a schema-qualified signature")
    schema, function, args = match.groups()
    types = tuple(" ".join(arg.split()) for arg in args.split(",")) if args.strip() else ()
    if any(not arg for arg in types):
        raise CatalogError(f"target {target_function!r} has an empty argument type")
    return schema, function, types


def catalog_row(rows: list[dict], command: str) -> CatalogRow:
    """The CatalogRow from the first statement's rows; CatalogError when there is none."""
    if not rows:
        raise CatalogError(f"{command} is not in the command catalog")
    row = rows[0]
    return CatalogRow(
        command_name=row["command_name"], category=row["category"], mutating=row["mutating"],
        reversible=row["reversible"], target_function=row["target_function"],
        inverse_command=row["inverse_command"], required_gates=tuple(row["required_gates"] or ()),
        arg_names=_arg_names(row) if row["resolves"] else None,
        returns_set=bool(row["returns_set"]), binding=row["binding"],
    )


def _arg_names(row: dict) -> tuple[str, ...]:
    if row["variadic"]:
        raise CatalogError(f"target {row['target_function']} is variadic: not bindable")
    names = row["proargnames"] or [""] * row["pronargs"]
    modes = row["proargmodes"] or ["i"] * len(names)
    inputs = [name for name, mode in zip(names, modes, strict=False) if mode in _INPUT_MODES]
    public = tuple((n[2:] if n.startswith("p_") and len(n) > 2 else n) or f"arg{i}"
                   for i, n in enumerate(inputs, start=1))
    if len(public) != row["pronargs"] or len(set(public)) != len(public):
        raise CatalogError(f"target {row['target_function']} has argument names the runtime "
                           "cannot address (missing or duplicated once p_ is dropped)")
    return public


def gate_states(rows: list[dict]) -> dict[str, bool]:
    """gate key -> whether it reads open, from v_dot_iu_gates."""
    return {row["gate_key"]: bool(row["reads_open"]) for row in rows}


def reversal_statement(command: str) -> Statement:
    """A command's reversibility, its inverse and the inverse's target, from the catalog."""
    return Statement(
        "SELECT c.command_name, c.mutating, c.reversible, c.inverse_command,"
        " i.target_function AS inverse_target"
        " FROM public.dot_iu_command_catalog AS c"
        " LEFT JOIN public.dot_iu_command_catalog AS i ON i.command_name = c.inverse_command"
        " WHERE c.command_name = %s::text",
        (command,),
    )
