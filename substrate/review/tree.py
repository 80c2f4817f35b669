"""The Alembic tree the tools compare against: its revisions, their order and their modules.

Defaults to the project's ``alembic.ini``; tests and DBAs may point at another tree (a copy of
``alembic/versions`` with an edited revision, a release checkout) with ``--alembic-ini``.
Loading the tree reads the revision files; it never runs ``env.py`` or touches a database.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INI = PROJECT_ROOT / "alembic.ini"


class UnknownRevision(LookupError):
    """A database names a revision this tree does not have (deployed from a newer tree?)."""


class Tree:
    """One Alembic tree (an alembic.ini and its versions folder)."""

    def __init__(self, ini: Path | str | None = None):
        self.ini = Path(ini or DEFAULT_INI).resolve()

    @cached_property
    def script(self):
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(Config(str(self.ini)))

    def head(self) -> str:
        """The head revision(s), comma-joined in sorted order (one for a linear history)."""
        return ",".join(sorted(self.script.get_heads()))

    def knows(self, revision: str) -> bool:
        try:
            return self.script.get_revision(revision) is not None
        except Exception:  # alembic raises several kinds for an unknown or ambiguous id
            return False

    def applied(self, revisions: str | None) -> list[str]:
        """The revisions a database at ``revisions`` (comma-joined) has applied, base first."""
        if not revisions:
            return []
        ordered, seen = [], set()
        for revision in revisions.split(","):
            if not self.knows(revision):
                raise UnknownRevision(revision)
            for step in reversed(list(self.script.iterate_revisions(revision, "base"))):
                if step.revision not in seen:
                    seen.add(step.revision)
                    ordered.append(step.revision)
        return ordered

    def pending(self, revisions: str | None) -> list[str]:
        """Revisions between ``revisions`` and head, in the order an upgrade applies them."""
        done = set(self.applied(revisions))
        return [r for r in self.applied(self.head()) if r not in done]

    def module(self, revision: str):
        return self.script.get_revision(revision).module

    def path(self, revision: str) -> Path:
        return Path(self.script.get_revision(revision).path)
