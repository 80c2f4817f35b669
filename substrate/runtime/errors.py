"""What the operator runtime raises (docs/runtime.md).

Refusals and failures of a governed call are not exceptions to the caller: the runtime records
them in the run ledger and returns a result whose status says so. Exceptions are for what the
runtime finds before it can run anything (a parameter, a statement or a catalog row it refuses,
turned into an audited refusal by the runtime), for what the database raised (turned into an
audited refusal or failure), and for the two cases where nothing can be recorded: no database
to talk to, and a commit whose outcome is unknown.
"""

from __future__ import annotations


class OperatorRuntimeError(Exception):
    """Anything the operator runtime raises."""


class CatalogError(OperatorRuntimeError):
    """The command is not catalogued, its target does not resolve, or its signature is not one
    the runtime can bind (an unsupported type, a variadic or unnamed argument)."""


class ParameterError(OperatorRuntimeError):
    """Parameters that do not fit the catalogued signature: missing, unknown or ill-typed.

    ``missing`` and ``ill_typed`` name catalogued parameters only; ``unknown`` counts the names
    given that the signature does not have (a name the caller made up is never recorded).
    """

    def __init__(self, message: str, *, missing=(), ill_typed=(), unknown: int = 0):
        super().__init__(message)
        self.missing = tuple(missing)
        self.ill_typed = tuple(ill_typed)
        self.unknown = unknown


class UnsafeStatement(OperatorRuntimeError):
    """A statement that is not exactly the governed call of its catalogued target."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind  # dml, ddl, several_statements, comment, other_call, not_sql, catalog


class DatabaseError(OperatorRuntimeError):
    """The database raised an error; the executor rolled the transaction back.

    ``step`` is the index of the statement that raised in the transaction's list, or None when
    BEGIN or COMMIT did. ``message`` is the first line of the primary message: it may quote a
    value, so it is shown to the caller and never recorded.
    """

    def __init__(self, sqlstate: str | None, message: str, step: int | None = None):
        super().__init__(f"SQLSTATE {sqlstate}: {message}")
        self.sqlstate = sqlstate
        self.message = message
        self.step = step


class ExecutorUnavailable(OperatorRuntimeError):
    """No database to run on: the connection could not be made or was lost before COMMIT was
    sent, so nothing of the transaction was committed (and nothing could be recorded)."""


class OutcomeUnknown(ExecutorUnavailable):
    """The connection was lost while COMMIT was in flight: the transaction may or may not have
    committed. The runtime records nothing more (see ``OperatorRuntime.apply``) and sets
    ``correlation_id`` and ``plan_run_id``, by which an auditor finds the row if it committed."""

    correlation_id: str | None = None
    plan_run_id: int | None = None
    mode: str | None = None  # the invocation's: plan, apply or verify
