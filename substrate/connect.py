"""Database URLs: one spelling for SQLAlchemy/Alembic, another for psycopg."""

from __future__ import annotations

import os


def to_conninfo(url: str) -> str:
    """A postgresql(+psycopg):// URL as psycopg accepts it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def from_args(url: str | None) -> str:
    """--url, else $DATABASE_URL; a clear error when neither is given."""
    url = url or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("no database: pass --url postgresql://... or set DATABASE_URL")
    return url
