"""The registry in seeds/ is the vocabulary of SPEC 3.3, and it checks its own rules."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from seeds.registry import (
    CATEGORIES,
    DOT_COMMANDS,
    GATE_BY_FUNCTION,
    GOVERNABLE_GATES,
    IU_CORE_COMMANDS,
    NEVER_FLIP_GATES,
    DotCommand,
    Param,
    TargetFunction,
    catalog_rows,
    command_by_name,
    gate_for,
    target_functions,
)
from seeds.validate import registry_problems

# SPEC 3.3, transcribed: name, category, mutating, reversible, target, inverse, apply gate.
SPEC_3_3 = [
    ("dot_iu_healthcheck", "health", False, True,
     "public.fn_iu_collection_healthcheck()", None, None),
    ("dot_iu_collection_status", "health", False, True,
     "public.fn_iu_collection_healthcheck()", None, None),
    ("dot_iu_validate_collection", "read", False, True,
     "public.fn_iu_collection_validate(uuid)", None, None),
    ("dot_iu_render_collection", "read", False, True,
     "public.fn_iu_collection_render(uuid)", None, "iu_core.composer_enabled"),
    ("dot_iu_compose_collection", "compose", True, True,
     "public.fn_iu_collection_compose(uuid, text)", None, "iu_core.composer_enabled"),
    ("dot_iu_add_piece", "compose", True, True,
     "public.fn_iu_collection_add_piece(uuid, uuid, integer)", "dot_iu_remove_piece",
     "iu_core.composer_enabled"),
    ("dot_iu_remove_piece", "compose", True, True,
     "public.fn_iu_collection_remove_piece(uuid, uuid)", "dot_iu_add_piece",
     "iu_core.composer_enabled"),
    ("dot_iu_reorder_pieces", "compose", True, True,
     "public.fn_iu_collection_reorder(uuid, uuid[])", "dot_iu_reorder_pieces",
     "iu_core.composer_enabled"),
    ("dot_iu_split_piece", "structure", True, True,
     "public.fn_iu_piece_split(uuid, uuid)", "dot_iu_rollback_structure_op",
     "iu_core.structure_ops_enabled"),
    ("dot_iu_merge_pieces", "structure", True, True,
     "public.fn_iu_piece_merge(uuid[], uuid)", "dot_iu_rollback_structure_op",
     "iu_core.structure_ops_enabled"),
    ("dot_iu_reparent_piece", "structure", True, True,
     "public.fn_iu_structure_op_apply(jsonb)", "dot_iu_rollback_structure_op",
     "iu_core.structure_ops_enabled"),
    ("dot_iu_move_piece", "structure", True, True,
     "public.fn_iu_structure_op_apply(jsonb)", "dot_iu_rollback_structure_op",
     "iu_core.structure_ops_enabled"),
    ("dot_iu_rollback_structure_op", "structure", True, False,
     "public.fn_iu_structure_op_rollback(uuid)", None, "iu_core.structure_ops_enabled"),
    ("dot_iu_delete_piece_soft", "lifecycle", True, True,
     "public.fn_iu_piece_delete_soft(uuid)", "dot_iu_restore_piece",
     "iu_core.structure_ops_enabled"),
    ("dot_iu_restore_piece", "lifecycle", True, True,
     "public.fn_iu_piece_restore(uuid)", "dot_iu_delete_piece_soft",
     "iu_core.structure_ops_enabled"),
    ("dot_iu_route_deliver", "event", True, False,
     "public.fn_iu_route_deliver(text)", None, "iu_core.delivery_enabled"),
    ("dot_iu_dead_letter_replay", "event", True, False,
     "public.fn_iu_route_dead_letter_replay(bigint)", None, "queue.dlq.replay_enabled"),
]


def replaced(command_name: str, **changes) -> tuple[DotCommand, ...]:
    """The registry with one command's fields replaced."""
    return tuple(
        dataclasses.replace(command, **changes) if command.name == command_name else command
        for command in DOT_COMMANDS
    )


def test_registry_holds_the_17_commands_of_spec_3_3_with_their_apply_gates():
    have = [
        (c.name, c.category, c.mutating, c.reversible, c.target.signature, c.inverse, gate_for(c))
        for c in IU_CORE_COMMANDS
    ]
    assert sorted(have) == sorted(SPEC_3_3)
    assert len(IU_CORE_COMMANDS) == 17


def test_registry_targets_15_distinct_functions_all_in_schema_public():
    targets = target_functions()
    assert len(targets) == 15
    assert {target.schema for target in targets} == {"public"}


def test_registry_keeps_parameter_names_and_the_catalog_keeps_types_only():
    add_piece = command_by_name()["dot_iu_add_piece"]
    assert [param.name for param in add_piece.target.params] == [
        "collection_id", "piece_id", "position"
    ]
    assert catalog_rows()["dot_iu_add_piece"]["target_function"] == (
        "public.fn_iu_collection_add_piece(uuid, uuid, integer)"
    )


def test_gate_classes_are_the_seven_governable_and_two_never_flip_gates_of_spec_3_1():
    assert set(GOVERNABLE_GATES) == {
        "iu_core.composer_enabled",
        "iu_core.structure_ops_enabled",
        "iu_core.delivery_enabled",
        "iu_core.three_axis_auto_refresh_enabled",
        "queue.job_substrate.enabled",
        "queue.dlq.replay_enabled",
        "iu_core.operator_runtime_enabled",
    }
    assert set(NEVER_FLIP_GATES) == {
        "iu_enact.allow_no_review_decision",
        "iu_core.vector_sync_enabled",
    }


def test_gate_by_function_names_only_governable_gates():
    assert set(GATE_BY_FUNCTION.values()) <= set(GOVERNABLE_GATES)


def test_the_registry_as_committed_has_no_problems():
    assert registry_problems() == []


def test_validation_refuses_a_name_outside_the_dot_iu_pattern():
    commands = replaced("dot_iu_healthcheck", name="iu_healthcheck")
    assert any("iu_healthcheck: name does not match" in p for p in registry_problems(commands))
    commands = replaced("dot_iu_healthcheck", name="dot_iu_Health-Check")
    assert any("name does not match" in p for p in registry_problems(commands))


def test_validation_refuses_an_inverse_that_is_not_a_registered_command():
    commands = replaced("dot_iu_add_piece", inverse="dot_iu_unknown")
    assert registry_problems(commands) == [
        "dot_iu_add_piece: inverse 'dot_iu_unknown' is not a registered command"
    ]


def test_validation_refuses_an_irreversible_command_that_names_an_inverse():
    commands = replaced("dot_iu_route_deliver", inverse="dot_iu_healthcheck")
    assert registry_problems(commands) == [
        "dot_iu_route_deliver: irreversible but names an inverse 'dot_iu_healthcheck'"
    ]


def test_validation_refuses_an_unknown_category():
    commands = replaced("dot_iu_healthcheck", category="maintenance")
    problems = registry_problems(commands)
    assert len(problems) == 1 and "unknown category 'maintenance'" in problems[0]
    assert "maintenance" not in CATEGORIES


def test_validation_refuses_a_duplicate_command_name():
    commands = DOT_COMMANDS + (DOT_COMMANDS[0],)
    assert "dot_iu_healthcheck: defined more than once" in registry_problems(commands)


def test_validation_refuses_a_blank_description():
    commands = replaced("dot_iu_healthcheck", description="   ")
    assert registry_problems(commands) == ["dot_iu_healthcheck: description is blank"]


def test_validation_refuses_a_parameter_type_postgresql_would_render_differently():
    target = TargetFunction("public", "fn_iu_piece_restore", (Param("piece_id", "int4"),))
    problems = registry_problems(replaced("dot_iu_restore_piece", target=target))
    assert any("write 'integer'" in p for p in problems)


@pytest.mark.parametrize("pg_type", ["date", "timestamp with time zone", "bytea", "interval[]"])
def test_validation_refuses_a_parameter_type_the_runtime_cannot_bind(pg_type):
    target = TargetFunction("public", "fn_iu_piece_restore", (Param("piece_id", pg_type),))
    problems = registry_problems(replaced("dot_iu_restore_piece", target=target))
    assert any("a type the operator runtime cannot bind" in p for p in problems), problems


def test_the_registry_accepts_exactly_the_types_the_runtime_binds():
    """seeds/ and substrate/ import nothing of each other, so the two lists are kept equal here."""
    from seeds.validate import CANONICAL_TYPES
    from substrate.runtime.params import SCALAR_TYPES

    assert CANONICAL_TYPES == SCALAR_TYPES


def test_validation_refuses_one_function_name_with_two_signatures():
    target = TargetFunction("public", "fn_iu_structure_op_apply", (Param("op", "text"),))
    problems = registry_problems(replaced("dot_iu_move_piece", target=target))
    assert problems == [
        "public.fn_iu_structure_op_apply: registered with several signatures "
        "['public.fn_iu_structure_op_apply(jsonb)', 'public.fn_iu_structure_op_apply(text)']"
    ]


def test_validation_refuses_a_gate_that_is_not_governable():
    gates = {**GATE_BY_FUNCTION, "public.fn_iu_piece_restore": "iu_core.no_such_gate"}
    assert registry_problems(gate_by_function=gates) == [
        "GATE_BY_FUNCTION['public.fn_iu_piece_restore']: iu_core.no_such_gate is not a "
        "governable gate"
    ]


def test_validation_refuses_a_never_flip_gate_as_an_apply_gate():
    gates = {**GATE_BY_FUNCTION, "public.fn_iu_piece_restore": "iu_core.vector_sync_enabled"}
    assert registry_problems(gate_by_function=gates) == [
        "GATE_BY_FUNCTION['public.fn_iu_piece_restore']: iu_core.vector_sync_enabled is a "
        "never-flip gate"
    ]


def test_validation_refuses_a_gate_for_a_function_no_command_calls():
    gates = {**GATE_BY_FUNCTION, "public.fn_iu_nothing": "iu_core.composer_enabled"}
    assert registry_problems(gate_by_function=gates) == [
        "GATE_BY_FUNCTION['public.fn_iu_nothing']: no command calls this function"
    ]


def test_importing_the_registry_validates_nothing_and_imports_no_database_driver():
    code = (
        "import sys, seeds.registry; "
        "print(sorted(m for m in sys.modules if m.startswith(('seeds', 'psycopg', 'sqlalchemy'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "['seeds', 'seeds.registry']"


def _imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (import, from-import, import_module("...")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value.split(".")[0])
    return found


@pytest.mark.parametrize("package,other", [("seeds", "substrate"), ("substrate", "seeds")])
def test_seeds_and_substrate_import_nothing_of_each_other(package, other):
    root = Path(__file__).resolve().parent.parent / package
    modules = sorted(root.rglob("*.py"))
    assert modules
    offenders = [str(path.relative_to(root.parent)) for path in modules
                 if other in _imported_packages(path)]
    assert offenders == [], f"{package}/ must not import {other}: {offenders}"
