"""A command made ready to run: ``DotCommandPlan`` and the gates it needs (docs/runtime.md).

``build_plan(catalog_row, params)`` is pure: it types the parameters from the catalogued
signature, builds the governed statement, checks it with ``_assert_governed`` and digests the
call. ``required_gates(command, mode)`` derives the gates from the catalog row: plan and verify
need none; apply needs the runtime gate plus the row's ``required_gates``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from substrate.runtime.catalog import CatalogRow, parse_target
from substrate.runtime.errors import CatalogError
from substrate.runtime.executors import Statement
from substrate.runtime.params import TypedParam, params_digest, type_params
from substrate.runtime.statements import _assert_governed, governed_statement

RUNTIME_GATE = "iu_core.operator_runtime_enabled"
MODES = ("plan", "apply", "verify")


@dataclass(frozen=True)
class DotCommandPlan:
    """The resolved catalog row, the typed parameters, the governed statement, the digest and
    the gates an apply needs. Holds no connection; building it ran nothing."""

    catalog: CatalogRow
    params: tuple[TypedParam, ...]
    statement: str
    params_digest: str
    gates_needed: tuple[str, ...]

    @property
    def command(self) -> str:
        return self.catalog.command_name

    def param(self, name: str) -> TypedParam | None:
        return next((p for p in self.params if p.name == name), None)

    def call(self) -> Statement:
        """The governed statement with its parameters bound as text."""
        return Statement(self.statement, tuple(p.text for p in self.params))


def required_gates(command, mode: str) -> tuple[str, ...]:
    """The gates ``mode`` needs for ``command`` (a CatalogRow or a DotCommandPlan)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "apply":
        return ()
    row = command.catalog if isinstance(command, DotCommandPlan) else command
    extra = [gate for gate in row.required_gates if gate != RUNTIME_GATE]
    return (RUNTIME_GATE, *dict.fromkeys(extra))


def build_plan(catalog: CatalogRow, params: Mapping[str, object] | None) -> DotCommandPlan:
    """Type, build, check and digest one call of ``catalog``'s command. Raises CatalogError,
    ParameterError or UnsafeStatement."""
    if not catalog.resolves:
        raise CatalogError(f"target {catalog.target_function} of {catalog.command_name} does "
                           "not resolve in this database")
    _, _, types = parse_target(catalog.target_function)
    statement = governed_statement(catalog)
    typed = type_params(catalog.command_name, catalog.arg_names, types, params)
    _assert_governed(statement, catalog)
    return DotCommandPlan(catalog, typed, statement, params_digest(catalog.command_name, typed),
                          required_gates(catalog, "apply"))
