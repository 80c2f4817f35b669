"""IU Core operator-runtime substrate: tooling around the Alembic revisions that own it."""

__version__ = "0.1.0"
