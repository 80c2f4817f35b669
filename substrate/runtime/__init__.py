"""The operator runtime (SPEC 3.8; docs/runtime.md): a catalogued command as a governed plan,
apply or verify, every invocation audited in the run ledger.

    from substrate.runtime import OperatorRuntime, psycopg_executor

    runtime = OperatorRuntime(psycopg_executor("postgresql://svc_runtime@db/iu_core"))
    planned = runtime.plan("dot_iu_add_piece", {"collection_id": c, "piece_id": p,
                                                "position": 3}, "alice")
    applied = runtime.apply("dot_iu_add_piece", {...}, "alice", plan_run_id=planned.run_id)
    runtime.verify("dot_iu_add_piece", {...}, "alice", correlation_id=planned.correlation_id)

Modules, one job each: ``params`` (typing and the digest), ``catalog`` (the catalog row and its
target's signature), ``statements`` (governed SQL and ``_assert_governed``), ``plan``
(``DotCommandPlan``, ``required_gates``), ``executors`` and ``psql`` (how transactions reach
the database), ``runtime`` (the modes), ``cli`` (``substrate run``). Importing this package
does no I/O and imports no database driver; the executor is injected.
"""

from substrate.runtime.catalog import CatalogRow
from substrate.runtime.errors import (
    CatalogError,
    DatabaseError,
    ExecutorUnavailable,
    OperatorRuntimeError,
    OutcomeUnknown,
    ParameterError,
    UnsafeStatement,
)
from substrate.runtime.executors import Executor, RowCount, Statement, psycopg_executor
from substrate.runtime.params import JSON_NULL, TypedParam
from substrate.runtime.plan import RUNTIME_GATE, DotCommandPlan, required_gates
from substrate.runtime.psql import psql_executor
from substrate.runtime.runtime import (
    DEFAULT_LEASE,
    REFUSAL_SQLSTATES,
    OperatorRuntime,
    Reversal,
    RunResult,
)
from substrate.runtime.statements import _assert_governed, governed_statement

__all__ = [
    "DEFAULT_LEASE", "JSON_NULL", "REFUSAL_SQLSTATES", "RUNTIME_GATE", "CatalogError", "CatalogRow",
    "DatabaseError", "DotCommandPlan", "Executor", "ExecutorUnavailable", "OperatorRuntime",
    "OperatorRuntimeError", "OutcomeUnknown", "ParameterError", "Reversal", "RowCount",
    "RunResult", "Statement", "TypedParam", "UnsafeStatement", "_assert_governed",
    "governed_statement", "psql_executor", "psycopg_executor", "required_gates",
]
