"""What the package shares with IU Core: ``dot_config`` (docs/roles.md, "dot_config is shared").

``dot_config`` existed in production before the package (SPEC's baseline adopts it), and IU
Core keeps its own settings there. Its gate keys do not depend on who may write the table: the
guard trigger (ENABLE ALWAYS) refuses any write that sets a never-flip key to anything but
'false', or a governable gate to 'true' outside ``fn_iu_gate_open``, whoever writes; writing
'false' and deleting a key fail closed. So a grant of plain data access on ``dot_config``
(SELECT, INSERT, UPDATE, DELETE) to one of IU Core's roles is not a finding of ``substrate
verify`` nor drift of ``substrate drift``; both list it as information. A grant to PUBLIC, any
other privilege (TRUNCATE, REFERENCES, TRIGGER), and every grant on any other package object
stay findings.
"""

from __future__ import annotations

SHARED_TARGETS = ("table public.dot_config", "column public.dot_config.")
DATA_ACCESS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
PACKAGE_ROLES = frozenset({"dot_iu_owner", "dot_iu_runtime", "dot_iu_gate_operator",
                           "dot_iu_auditor"})


def is_shared_grant(key: str, privileges: str) -> bool:
    """Whether the snapshot's privilege entry ``key`` ('table public.dot_config to iu_app'),
    holding ``privileges`` ('SELECT, UPDATE*'), is IU Core's own access to the shared table."""
    target, _, grantee = key.rpartition(" to ")
    if not target.startswith(SHARED_TARGETS) or target.startswith("table ") and (
            target != SHARED_TARGETS[0]):
        return False
    if grantee in ("PUBLIC", "OWNER") or grantee in PACKAGE_ROLES:
        return False
    held = {privilege.rstrip("*") for privilege in privileges.split(", ") if privilege}
    return bool(held) and held <= DATA_ACCESS


def describe(key: str, privileges: str) -> str:
    target, _, grantee = key.rpartition(" to ")
    return (f"{target}: {grantee} holds {privileges} (dot_config is shared with IU Core; its "
            "guard keeps the gates safe whoever writes)")
