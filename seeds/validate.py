"""Checks the registry's definitions against the rules of SPEC 3.1-3.3 (no I/O, nothing at import).

``registry_problems()`` returns one sentence per broken rule; an empty list means the registry is
well formed. The generator and ``seeds.check`` refuse to run on a registry with problems.
"""

from __future__ import annotations

import re

from seeds.registry import (
    CATEGORIES,
    DOT_COMMANDS,
    GATE_BY_FUNCTION,
    GOVERNABLE_GATES,
    NEVER_FLIP_GATES,
    DotCommand,
)

# Mirrors ck_dot_iu_command_catalog_command_name in revision 0003_operator_runtime.
COMMAND_NAME_RE = re.compile(r"^dot_iu_[a-z0-9_]+$")
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
# Types as PostgreSQL renders them (format_type / oidvectortypes), so signatures resolve exactly,
# and that the operator runtime can bind (substrate.runtime.params.SCALAR_TYPES; a test keeps the
# two equal): a command the runtime could not call is refused here, not at its first apply.
CANONICAL_TYPES = frozenset(
    {"bigint", "boolean", "integer", "jsonb", "numeric", "smallint", "text", "uuid"}
)
# Types PostgreSQL has that the runtime does not bind (docs/runtime.md, "Governed SQL only").
UNBOUND_TYPES = frozenset(
    {
        "bytea",
        "date",
        "double precision",
        "interval",
        "json",
        "real",
        "timestamp with time zone",
        "timestamp without time zone",
    }
)
TYPE_ALIASES = {
    "int": "integer",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "bool": "boolean",
    "float4": "real",
    "float8": "double precision",
    "timestamptz": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
    "varchar": "text",
    "character varying": "text",
}


def type_problem(type_name: str) -> str | None:
    """Why ``type_name`` is not a canonical parameter type, or None when it is."""
    base = type_name.removesuffix("[]")
    if base in CANONICAL_TYPES:
        return None
    if base in TYPE_ALIASES and TYPE_ALIASES[base] in CANONICAL_TYPES:
        return f"write {TYPE_ALIASES[base]!r} (as PostgreSQL renders it), not {base!r}"
    if TYPE_ALIASES.get(base, base) in UNBOUND_TYPES:
        return (f"{type_name!r} is a type the operator runtime cannot bind (it binds "
                f"{', '.join(sorted(CANONICAL_TYPES))} and one-dimensional arrays of them)")
    return f"{type_name!r} is not a known canonical type ({', '.join(sorted(CANONICAL_TYPES))})"


def command_problems(command: DotCommand, known_names: set[str]) -> list[str]:
    """The rules one command breaks, each as a sentence naming the command."""
    name = command.name
    problems = []
    if not COMMAND_NAME_RE.match(name):
        problems.append(f"{name}: name does not match {COMMAND_NAME_RE.pattern}")
    if command.category not in CATEGORIES:
        problems.append(f"{name}: unknown category {command.category!r} (known: {CATEGORIES})")
    if not isinstance(command.mutating, bool) or not isinstance(command.reversible, bool):
        problems.append(f"{name}: mutating and reversible must be booleans")
    if not command.description.strip():
        problems.append(f"{name}: description is blank")
    if command.inverse is not None:
        if command.inverse not in known_names:
            problems.append(f"{name}: inverse {command.inverse!r} is not a registered command")
        if not command.reversible:
            problems.append(f"{name}: irreversible but names an inverse {command.inverse!r}")
    target = command.target
    if not IDENTIFIER_RE.match(target.schema) or not IDENTIFIER_RE.match(target.name):
        problems.append(f"{name}: target {target.qualified_name!r} is not schema.identifier")
    for param in target.params:
        if not IDENTIFIER_RE.match(param.name):
            problems.append(f"{name}: parameter name {param.name!r} is not an identifier")
        why = type_problem(param.type)
        if why:
            problems.append(f"{name}: parameter {param.name}: {why}")
    return problems


def registry_problems(
    commands: tuple[DotCommand, ...] = DOT_COMMANDS,
    gate_by_function: dict[str, str] = GATE_BY_FUNCTION,
    governable: tuple[str, ...] = GOVERNABLE_GATES,
    never_flip: tuple[str, ...] = NEVER_FLIP_GATES,
) -> list[str]:
    """Every rule the registry breaks; empty when it is well formed."""
    problems = []
    names = [command.name for command in commands]
    for duplicate in sorted({name for name in names if names.count(name) > 1}):
        problems.append(f"{duplicate}: defined more than once")
    for command in commands:
        problems.extend(command_problems(command, set(names)))

    # One function name, one signature: the catalog cannot call two overloads by one name.
    signatures: dict[str, set[str]] = {}
    for command in commands:
        signatures.setdefault(command.target.qualified_name, set()).add(command.target.signature)
    for function, found in sorted(signatures.items()):
        if len(found) > 1:
            problems.append(f"{function}: registered with several signatures {sorted(found)}")

    overlap = set(governable) & set(never_flip)
    if overlap:
        problems.append(f"gates both governable and never-flip: {sorted(overlap)}")
    for function, gate in sorted(gate_by_function.items()):
        if gate in never_flip:
            problems.append(f"GATE_BY_FUNCTION[{function!r}]: {gate} is a never-flip gate")
        elif gate not in governable:
            problems.append(f"GATE_BY_FUNCTION[{function!r}]: {gate} is not a governable gate")
        if function not in signatures:
            problems.append(f"GATE_BY_FUNCTION[{function!r}]: no command calls this function")
    return problems
