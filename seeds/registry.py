"""The command vocabulary: the single source of truth for ``public.dot_iu_command_catalog``.

Every ``dot_iu_*`` command the operator runtime may plan, apply or verify is defined here, with
the IU Core function it calls (name and typed parameters), its inverse and the gate classes of
SPEC 3.1/3.2. The catalog table is this module's SQL-visible projection, delivered by generated
seed revisions (``make seed-revision``); ``make check-seeds`` fails when the two disagree.

Parameter types are written as PostgreSQL renders them (``oidvectortypes``: ``integer``, not
``int``), so a catalog ``target_function`` such as ``public.fn_iu_piece_restore(uuid)`` resolves
with ``to_regprocedure`` by exact signature. Nothing here runs at import: call
``seeds.validate.registry_problems()`` to check the definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES = ("health", "read", "compose", "structure", "lifecycle", "event")

# SPEC 3.1 and 3.2: gates an operator may open for a bounded window...
GOVERNABLE_GATES = (
    "iu_core.composer_enabled",
    "iu_core.structure_ops_enabled",
    "iu_core.delivery_enabled",
    "iu_core.three_axis_auto_refresh_enabled",
    "queue.job_substrate.enabled",
    "queue.dlq.replay_enabled",
    "iu_core.operator_runtime_enabled",
)
# ...and gates nothing in this package may ever open.
NEVER_FLIP_GATES = (
    "iu_enact.allow_no_review_decision",
    "iu_core.vector_sync_enabled",
)


@dataclass(frozen=True)
class Param:
    """One parameter of a target function: its name (for docs and stand-ins) and its type."""

    name: str
    type: str


@dataclass(frozen=True)
class TargetFunction:
    """An IU Core function a command calls, identified by schema, name and parameter types."""

    schema: str
    name: str
    params: tuple[Param, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def signature(self) -> str:
        """The catalog form: schema-qualified, types only, e.g. ``public.f(uuid, integer)``."""
        return f"{self.qualified_name}({', '.join(param.type for param in self.params)})"


@dataclass(frozen=True)
class DotCommand:
    """One catalogued command."""

    name: str
    category: str
    mutating: bool
    reversible: bool
    target: TargetFunction
    inverse: str | None
    description: str

    def catalog_row(self) -> dict[str, object]:
        """The row this command owns in ``public.dot_iu_command_catalog``."""
        return {
            "command_name": self.name,
            "category": self.category,
            "mutating": self.mutating,
            "reversible": self.reversible,
            "target_function": self.target.signature,
            "inverse_command": self.inverse,
            "description": self.description,
            "required_gates": [gate] if (gate := gate_for(self)) else [],
        }


def _fn(name: str, *params: tuple[str, str]) -> TargetFunction:
    return TargetFunction("public", name, tuple(Param(p_name, p_type) for p_name, p_type in params))


# The 15 IU Core target functions (SPEC 3.3). They belong to IU Core, not to this package.
HEALTHCHECK = _fn("fn_iu_collection_healthcheck")
VALIDATE = _fn("fn_iu_collection_validate", ("collection_id", "uuid"))
RENDER = _fn("fn_iu_collection_render", ("collection_id", "uuid"))
COMPOSE = _fn("fn_iu_collection_compose", ("collection_id", "uuid"), ("title", "text"))
ADD_PIECE = _fn(
    "fn_iu_collection_add_piece",
    ("collection_id", "uuid"),
    ("piece_id", "uuid"),
    ("position", "integer"),
)
REMOVE_PIECE = _fn("fn_iu_collection_remove_piece", ("collection_id", "uuid"), ("piece_id", "uuid"))
REORDER = _fn("fn_iu_collection_reorder", ("collection_id", "uuid"), ("piece_ids", "uuid[]"))
SPLIT = _fn("fn_iu_piece_split", ("piece_id", "uuid"), ("review_decision_id", "uuid"))
MERGE = _fn("fn_iu_piece_merge", ("piece_ids", "uuid[]"), ("review_decision_id", "uuid"))
STRUCTURE_OP_APPLY = _fn("fn_iu_structure_op_apply", ("op", "jsonb"))
STRUCTURE_OP_ROLLBACK = _fn("fn_iu_structure_op_rollback", ("op_id", "uuid"))
DELETE_SOFT = _fn("fn_iu_piece_delete_soft", ("piece_id", "uuid"))
RESTORE = _fn("fn_iu_piece_restore", ("piece_id", "uuid"))
ROUTE_DELIVER = _fn("fn_iu_route_deliver", ("route_code", "text"))
DEAD_LETTER_REPLAY = _fn("fn_iu_route_dead_letter_replay", ("dead_letter_id", "bigint"))

# The bounded gate protocol (SPEC 3.4). These four belong to this package (revision
# 0006_gate_protocol), so they resolve on every migrated database; they need no gate to apply.
GATE_OPEN = _fn(
    "fn_iu_gate_open",
    ("p_gate", "text"),
    ("p_approval_id", "text"),
    ("p_actor", "text"),
    ("p_reason", "text"),
    ("p_ttl_seconds", "integer"),
)
GATE_CLOSE = _fn("fn_iu_gate_close", ("p_gate", "text"), ("p_actor", "text"), ("p_reason", "text"))
GATE_VERIFY_CLOSED = _fn("fn_iu_gate_verify_closed", ("p_gate", "text"))
GATE_WATCHDOG = _fn("fn_iu_gate_watchdog", ("p_actor", "text"))
# The operator runtime's lease (docs/runtime.md): an operator's break is a catalogued command, so
# it is audited in the run ledger like the gate protocol's calls.
LEASE_BREAK = _fn(
    "fn_dot_iu_runtime_lease_break", ("p_lease", "text"), ("p_actor", "text"), ("p_reason", "text")
)
PACKAGE_FUNCTIONS = (GATE_OPEN, GATE_CLOSE, GATE_VERIFY_CLOSED, GATE_WATCHDOG, LEASE_BREAK)

# SPEC 3.3: the initial vocabulary, 17 commands over the 15 IU Core functions above.
IU_CORE_COMMANDS: tuple[DotCommand, ...] = (
    DotCommand(
        name="dot_iu_healthcheck",
        category="health",
        mutating=False,
        reversible=True,
        target=HEALTHCHECK,
        inverse=None,
        description="Report whether IU Core collections are healthy.",
    ),
    DotCommand(
        name="dot_iu_collection_status",
        category="health",
        mutating=False,
        reversible=True,
        target=HEALTHCHECK,
        inverse=None,
        description="Report the status of IU Core collections (same probe as the healthcheck).",
    ),
    DotCommand(
        name="dot_iu_validate_collection",
        category="read",
        mutating=False,
        reversible=True,
        target=VALIDATE,
        inverse=None,
        description="Validate one collection and report its problems.",
    ),
    DotCommand(
        name="dot_iu_render_collection",
        category="read",
        mutating=False,
        reversible=True,
        target=RENDER,
        inverse=None,
        description="Render one collection as the composer would deliver it.",
    ),
    DotCommand(
        name="dot_iu_compose_collection",
        category="compose",
        mutating=True,
        reversible=True,
        target=COMPOSE,
        inverse=None,
        description="Compose a new collection with a title.",
    ),
    DotCommand(
        name="dot_iu_add_piece",
        category="compose",
        mutating=True,
        reversible=True,
        target=ADD_PIECE,
        inverse="dot_iu_remove_piece",
        description="Add a piece to a collection at a position.",
    ),
    DotCommand(
        name="dot_iu_remove_piece",
        category="compose",
        mutating=True,
        reversible=True,
        target=REMOVE_PIECE,
        inverse="dot_iu_add_piece",
        description="Remove a piece from a collection.",
    ),
    DotCommand(
        name="dot_iu_reorder_pieces",
        category="compose",
        mutating=True,
        reversible=True,
        target=REORDER,
        inverse="dot_iu_reorder_pieces",
        description="Reorder the pieces of a collection (undone by reordering back).",
    ),
    DotCommand(
        name="dot_iu_split_piece",
        category="structure",
        mutating=True,
        reversible=True,
        target=SPLIT,
        inverse="dot_iu_rollback_structure_op",
        description="Split a piece under a review decision.",
    ),
    DotCommand(
        name="dot_iu_merge_pieces",
        category="structure",
        mutating=True,
        reversible=True,
        target=MERGE,
        inverse="dot_iu_rollback_structure_op",
        description="Merge pieces under a review decision.",
    ),
    DotCommand(
        name="dot_iu_reparent_piece",
        category="structure",
        mutating=True,
        reversible=True,
        target=STRUCTURE_OP_APPLY,
        inverse="dot_iu_rollback_structure_op",
        description="Move a piece under another parent (a structure op).",
    ),
    DotCommand(
        name="dot_iu_move_piece",
        category="structure",
        mutating=True,
        reversible=True,
        target=STRUCTURE_OP_APPLY,
        inverse="dot_iu_rollback_structure_op",
        description="Move a piece to another position (a structure op).",
    ),
    DotCommand(
        name="dot_iu_rollback_structure_op",
        category="structure",
        mutating=True,
        reversible=False,
        target=STRUCTURE_OP_ROLLBACK,
        inverse=None,
        description="Roll back an applied structure op; itself irreversible.",
    ),
    DotCommand(
        name="dot_iu_delete_piece_soft",
        category="lifecycle",
        mutating=True,
        reversible=True,
        target=DELETE_SOFT,
        inverse="dot_iu_restore_piece",
        description="Soft-delete a piece (restorable).",
    ),
    DotCommand(
        name="dot_iu_restore_piece",
        category="lifecycle",
        mutating=True,
        reversible=True,
        target=RESTORE,
        inverse="dot_iu_delete_piece_soft",
        description="Restore a soft-deleted piece.",
    ),
    DotCommand(
        name="dot_iu_route_deliver",
        category="event",
        mutating=True,
        reversible=False,
        target=ROUTE_DELIVER,
        inverse=None,
        description="Deliver the pending events of a route; irreversible.",
    ),
    DotCommand(
        name="dot_iu_dead_letter_replay",
        category="event",
        mutating=True,
        reversible=False,
        target=DEAD_LETTER_REPLAY,
        inverse=None,
        description="Replay one dead-lettered event; irreversible.",
    ),
)

# SPEC 3.4: the bounded gate protocol's commands, calling this package's own functions.
GATE_COMMANDS: tuple[DotCommand, ...] = (
    DotCommand(
        name="dot_iu_gate_open",
        category="health",
        mutating=True,
        reversible=True,
        target=GATE_OPEN,
        inverse="dot_iu_gate_close",
        description="Open one governable gate for an approved, bounded window.",
    ),
    DotCommand(
        name="dot_iu_gate_close",
        category="health",
        mutating=True,
        reversible=True,
        target=GATE_CLOSE,
        inverse="dot_iu_gate_open",
        description="Close one governable gate (force it to its safe default 'false').",
    ),
    DotCommand(
        name="dot_iu_gate_verify_closed",
        category="read",
        mutating=False,
        reversible=True,
        target=GATE_VERIFY_CLOSED,
        inverse=None,
        description="Report whether the governable gates are closed and never-flip gates intact.",
    ),
    DotCommand(
        name="dot_iu_gate_watchdog",
        category="health",
        mutating=True,
        reversible=True,
        target=GATE_WATCHDOG,
        inverse=None,
        description="Close every governable gate whose window expired or that is open without one.",
    ),
)

# The operator runtime's own command (docs/runtime.md).
RUNTIME_COMMANDS: tuple[DotCommand, ...] = (
    DotCommand(
        name="dot_iu_runtime_lease_break",
        category="health",
        mutating=True,
        reversible=False,
        target=LEASE_BREAK,
        inverse=None,
        description="Free the operator runtime's lease from whoever holds it (audited).",
    ),
)

DOT_COMMANDS: tuple[DotCommand, ...] = IU_CORE_COMMANDS + GATE_COMMANDS + RUNTIME_COMMANDS

# Target function (schema-qualified name) -> the governable gate that must be open to APPLY a
# command calling it (SPEC 3.3, last column). A function absent here needs no gate.
GATE_BY_FUNCTION: dict[str, str] = {
    RENDER.qualified_name: "iu_core.composer_enabled",
    COMPOSE.qualified_name: "iu_core.composer_enabled",
    ADD_PIECE.qualified_name: "iu_core.composer_enabled",
    REMOVE_PIECE.qualified_name: "iu_core.composer_enabled",
    REORDER.qualified_name: "iu_core.composer_enabled",
    SPLIT.qualified_name: "iu_core.structure_ops_enabled",
    MERGE.qualified_name: "iu_core.structure_ops_enabled",
    STRUCTURE_OP_APPLY.qualified_name: "iu_core.structure_ops_enabled",
    STRUCTURE_OP_ROLLBACK.qualified_name: "iu_core.structure_ops_enabled",
    DELETE_SOFT.qualified_name: "iu_core.structure_ops_enabled",
    RESTORE.qualified_name: "iu_core.structure_ops_enabled",
    ROUTE_DELIVER.qualified_name: "iu_core.delivery_enabled",
    DEAD_LETTER_REPLAY.qualified_name: "queue.dlq.replay_enabled",
}


def command_by_name(commands: tuple[DotCommand, ...] = DOT_COMMANDS) -> dict[str, DotCommand]:
    return {command.name: command for command in commands}


def catalog_rows(commands: tuple[DotCommand, ...] = DOT_COMMANDS) -> dict[str, dict[str, object]]:
    """command_name -> catalog row, for every command of the registry."""
    return {command.name: command.catalog_row() for command in commands}


def target_functions(commands: tuple[DotCommand, ...] = DOT_COMMANDS) -> tuple[TargetFunction, ...]:
    """The distinct IU Core target functions, ordered by signature.

    The package's own functions (PACKAGE_FUNCTIONS) are left out: every migrated database has
    them, so whether targets resolve is a question about IU Core only (SPEC 3.3).
    """
    targets = {command.target for command in commands} - set(PACKAGE_FUNCTIONS)
    return tuple(sorted(targets, key=lambda t: t.signature))


def gate_for(
    command: DotCommand, gate_by_function: dict[str, str] = GATE_BY_FUNCTION
) -> str | None:
    """The gate that must be open to apply ``command``, or None when it needs none."""
    return gate_by_function.get(command.target.qualified_name)
