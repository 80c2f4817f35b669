"""Runtime binding: an apply names the catalog binding its statement was built from.

Revision ID: 0017_runtime_binding
Revises: 0016_locks_and_chains

Creates (docs/runtime.md, docs/objects.md):
- fn_dot_iu_command_binding(p_command_name) v1: the md5 of a command's catalog row and of its
  target's pg_proc entry (oid, argument names and modes), NULL for an uncatalogued command:
  what the operator runtime builds a command's statement from. SECURITY INVOKER, STABLE;
  EXECUTE for the package's three roles, which read both anyway (as the catalog is);
- fn_dot_iu_runtime_apply_begin v3, with a fifth argument p_binding text DEFAULT NULL: it locks
  the command's catalog row FOR SHARE for the whole apply (a catalog change waits for the
  applies in flight) and, when p_binding is given, refuses with 55000 unless it is the current
  binding, so an apply never runs a statement built from a catalog row or a target that has
  changed since the runtime read them. This is what lets a runtime keep the catalog rows it
  read: the database refuses the stale ones. Its EXECUTE stays with the runtime role.
Grants: EXECUTE on apply_begin to dot_iu_runtime only, on the binding to dot_iu_runtime,
dot_iu_gate_operator and dot_iu_auditor (REVOKE ALL FROM PUBLIC on both). Locks: none that a
caller waits for: the old apply_begin is dropped and the new one created in one step, so an
apply that started before the step commits calls the four-argument function and one after it
the five-argument one; a caller that names four arguments keeps working (p_binding defaults to
NULL).
Requires: 0016_locks_and_chains.
Reverses: fn_dot_iu_runtime_apply_begin v2 (four arguments, its grant and comment) and drops
fn_dot_iu_command_binding. Refuses nothing: no data is involved.
"""

from __future__ import annotations

import revision_helpers_v1 as h

revision = "0017_runtime_binding"
down_revision = "0016_locks_and_chains"
branch_labels = None
depends_on = None

BINDING = "public.fn_dot_iu_command_binding(text)"
READERS = (h.RUNTIME, h.GATE_OPERATOR, h.AUDITOR)  # those who may read the catalog
BINDING_COMMENT = (
    "The md5 of a command's catalog row and of its target's pg_proc entry (oid, argument names "
    "and modes): what the operator runtime builds the command's statement from. NULL for a "
    "command not in the catalog. fn_dot_iu_runtime_apply_begin compares it."
)
APPLY_BEGIN_V2 = "public.fn_dot_iu_runtime_apply_begin(text, text, text, bigint)"
APPLY_BEGIN_V3 = "public.fn_dot_iu_runtime_apply_begin(text, text, text, bigint, text)"
APPLY_BEGIN_COMMENTS = (
    "First statement of an apply transaction: holds the lease (current epoch, acquired by "
    "this login) and the gates the command needs (they must read open), or raises 55000.",
    "First statement of an apply transaction: holds the command's catalog row, the lease "
    "(current epoch, acquired by this login) and the gates the command needs (they must read "
    "open), and checks the binding the statement was built from when p_binding is given "
    "(fn_dot_iu_command_binding); raises 55000 otherwise.",
)


def upgrade() -> None:
    h.begin(expected_version=down_revision)
    h.new_function("fn_dot_iu_command_binding.v1.sql", BINDING, BINDING_COMMENT, READERS)
    h.drop_function(APPLY_BEGIN_V2, (h.RUNTIME,))
    h.new_function("fn_dot_iu_runtime_apply_begin.v3.sql", APPLY_BEGIN_V3,
                   APPLY_BEGIN_COMMENTS[1], (h.RUNTIME,))


def downgrade() -> None:
    h.begin(expected_version=revision)
    h.drop_function(APPLY_BEGIN_V3, (h.RUNTIME,))
    h.new_function("fn_dot_iu_runtime_apply_begin.v2.sql", APPLY_BEGIN_V2,
                   APPLY_BEGIN_COMMENTS[0], (h.RUNTIME,))
    h.drop_function(BINDING, READERS)
