"""IU Core operator-runtime substrate: tooling around the Alembic revisions that own it.

Sub-packages by audience: ``devdb`` (the embedded dev/test server), ``demo`` (what ``make demo``
prints), ``review`` (CI and DBAs: snapshot, drift, verify, lint), ``gates`` (operators: the gate
protocol); ``cli`` is the ``substrate`` command and ``connect`` how every command reaches its
database. Importing this package imports nothing else.
"""

__version__ = "0.1.0"
