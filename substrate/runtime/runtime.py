"""The operator runtime: plan, apply and verify a catalogued command, auditing every invocation
(docs/runtime.md; SPEC 3.8).

``OperatorRuntime(executor)`` does no I/O until a mode is called. Each call of ``plan``,
``apply`` or ``verify`` writes exactly ONE run-ledger row through ``public.fn_dot_iu_command_log``
(``planned``, ``applied``, ``verified``, ``refused`` or ``failed``) and returns a ``RunResult``;
``prepare`` and ``reversal`` only read the catalog and write nothing. A row never holds a
parameter value: ``params_digest`` is an md5, and the evidence holds structural facts only
(mode, statement count, result row count, shut gates, SQLSTATE and its class, the failing
step, plan run id, lease name and epoch, correlation id).

A refused or failed row says why in ``evidence.reason``: ``actor`` (not a name the ledger
accepts; recorded under "(no valid actor given)"), ``catalog`` (not catalogued, target not
resolving or not bindable), ``parameters`` (with the catalogued names ``missing`` and
``ill_typed`` and the count of ``unknown`` ones), ``unsafe_statement`` (with its ``kind``),
``stale_plan``, ``gate_shut`` (with ``shut_gates``), ``lease_held``, ``lock_timeout`` (55P03
in apply_begin: it waited too long for another apply, a catalog change or a close), or
``database`` (with
``sqlstate``, ``error_class`` and the ``step`` that raised: resolve, apply_begin (which takes
the lease too), command, ledger, lease_release, commit or probe).

Status of a database error (any mode): SQLSTATE 55000 (gate shut, lease lost, stale plan),
22023 (not a plan of this call, bad evidence or actor), 23505 (plan already applied), 42501
(not allowed) and 23503 (not catalogued) are ``refused``; anything else is ``failed``.

Besides misuse (ValueError, TypeError: a malformed correlation id, say), two things raise
instead of returning a result: ``ExecutorUnavailable`` (no database: nothing ran, nothing
could be recorded) and ``OutcomeUnknown`` (see ``apply``). A command the ledger itself
refuses to record (a name absent from the catalog: 23503) comes back ``refused`` with
``run_id`` None and says so.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from substrate.runtime.catalog import (
    CatalogRow,
    apply_statements,
    catalog_row,
    catalog_statements,
    diagnosis_statements,
    gate_states,
    reversal_statement,
)
from substrate.runtime.errors import (
    CatalogError,
    DatabaseError,
    OutcomeUnknown,
    ParameterError,
    UnsafeStatement,
)
from substrate.runtime.executors import Executor, Statement
from substrate.runtime.params import names_digest
from substrate.runtime.plan import DotCommandPlan, build_plan, required_gates
from substrate.runtime.statements import (
    APPLY_BEGIN,
    APPLY_BEGIN_TAKING,
    LEASE_RELEASE_HELD,
    PLAN_CHECK,
    VERIFY_HEALTH,
    VERIFY_VALIDATE,
    _assert_governed,
    log,
    log_applied,
)

DEFAULT_LEASE = "operator_runtime"
REFUSAL_SQLSTATES = frozenset({"55000", "22023", "23505", "42501", "23503"})
LOCK_NOT_AVAILABLE = "55P03"
INVALID_ACTOR = "(no valid actor given)"
MAX_RUN_ID = 10**18 - 1
# The ledger's actor rule (fn_dot_iu_text_problem), so a bad actor is refused before anything
# runs and recorded under INVALID_ACTOR instead of being refused by the ledger itself.
_INVISIBLE = re.compile(
    r"[\x00-\x1f\x7f-\xa0\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2000-\u200f"
    r"\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    r"\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")
# Bytes a shell passed that are not UTF-8 reach Python as lone surrogates.
SURROGATE = re.compile(r"[\ud800-\udfff]")
_LETTER_OR_DIGIT = re.compile(
    r"[0-9A-Za-z\xc0-\xd6\xd8-\xf6\xf8-\u1fff\u2070-\u218f\u2c00-\u2dff\u2e80-\uffef"
    r"\U00010000-\U0010ffff]")


def new_holder() -> str:
    """A lease holder id distinct per process and per runtime object: host:pid:random."""
    host = re.sub(r"[^0-9A-Za-z._-]", "_", socket.gethostname())[:100] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(8)}"


def status_of(sqlstate: str | None) -> str:
    return "refused" if sqlstate in REFUSAL_SQLSTATES else "failed"


def actor_problem(actor: object) -> str | None:
    """Why ``actor`` cannot be recorded as the ledger's actor, or None."""
    if not isinstance(actor, str) or not actor.strip():
        return "actor is missing or blank"
    if len(actor) > 200:
        return f"actor is {len(actor)} characters long: at most 200"
    if _INVISIBLE.search(actor):
        return "actor holds a control, format or invisible character"
    if SURROGATE.search(actor):
        return "actor is not valid Unicode (a lone surrogate: bytes that are not UTF-8)"
    if not _LETTER_OR_DIGIT.search(actor):
        return "actor holds no letter or digit"
    return None


@dataclass
class RunResult:
    """What one plan, apply or verify did. ``rows`` are the command's (or the probe's) result
    rows as JSON objects; ``run_id`` is the ledger row (None only when the ledger refused to
    record it: ``message`` says why)."""

    status: str  # planned, applied, verified, refused, failed
    mode: str
    command: str
    run_id: int | None
    correlation_id: str | None
    params_digest: str
    message: str
    rows: list = field(default_factory=list)
    sqlstate: str | None = None
    plan_run_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("planned", "applied", "verified")

    def as_dict(self) -> dict:
        return {"status": self.status, "mode": self.mode, "command": self.command,
                "run_id": self.run_id, "correlation_id": self.correlation_id,
                "params_digest": self.params_digest, "plan_run_id": self.plan_run_id,
                "sqlstate": self.sqlstate, "message": self.message, "rows": self.rows}


@dataclass(frozen=True)
class Reversal:
    """How a command is undone, from its catalog row; nothing was run to find out."""

    command: str
    mutating: bool
    reversible: bool
    inverse_command: str | None
    inverse_target: str | None
    note: str

    def as_dict(self) -> dict:
        return {"command": self.command, "mutating": self.mutating,
                "reversible": self.reversible, "inverse_command": self.inverse_command,
                "inverse_target": self.inverse_target, "note": self.note}


class _Stop(Exception):
    """A refusal or failure, with the structural facts its ledger row records."""

    def __init__(self, status: str, reason: str, message: str, sqlstate: str | None = None,
                 **facts):
        super().__init__(message)
        self.status, self.reason, self.message, self.sqlstate = status, reason, message, sqlstate
        self.facts = facts


def _database_stop(error: DatabaseError, step: str, reason: str = "database",
                   **facts) -> _Stop:
    return _Stop(status_of(error.sqlstate), reason,
                 f"{step}: SQLSTATE {error.sqlstate}: {error.message}", error.sqlstate,
                 step=step, **facts)


@dataclass
class _Call:
    """One invocation: what its ledger row says, whatever happens."""

    mode: str
    command: str
    params: Mapping | None
    given_plan: DotCommandPlan | None
    actor: str
    actor_problem: str | None
    correlation_id: str | None
    plan_run_id: int | None
    digest: str
    facts: dict = field(default_factory=dict)

    def evidence(self, **facts) -> str:
        body = {"mode": self.mode, **self.facts, **facts}
        if self.correlation_id:
            body["correlation_id"] = self.correlation_id
        if self.plan_run_id is not None:
            body["plan_run_id"] = self.plan_run_id
        return json.dumps(body, sort_keys=True)

    def result(self, status, run_id, message, rows=(), sqlstate=None) -> RunResult:
        return RunResult(status, self.mode, self.command, run_id, self.correlation_id,
                         self.digest, message, list(rows), sqlstate, self.plan_run_id)


def _scalar(rows: list[dict]):
    return next(iter(rows[0].values())) if rows else None


class OperatorRuntime:
    """Plans, applies and verifies catalogued commands through an injected executor.

    ``lease`` names the runtime lease an apply holds (one applier at a time); ``holder``
    defaults to ``host:pid:random``, distinct for every runtime object; ``lease_ttl`` is the
    lease's time to live in seconds, counted by the database's clock.

    A runtime keeps the catalog rows it has read (with their binding,
    fn_dot_iu_command_binding) and an apply builds its statement from the kept row: the
    apply transaction names that binding to fn_dot_iu_runtime_apply_begin, which refuses it
    once the catalog row or the target has changed, and the runtime then reads the row afresh
    and applies once more (docs/runtime.md, "The catalog binding"). Each apply takes the lease
    and gives it back inside its own transaction; inside ``holding_lease()`` the runtime keeps
    it from one apply to the next.
    """

    def __init__(self, executor: Executor, *, lease: str = DEFAULT_LEASE,
                 holder: str | None = None, lease_ttl: int = 60):
        if not (type(lease_ttl) is int and 0 < lease_ttl <= 3600):
            raise ValueError("lease_ttl must be whole seconds in 1..3600")
        self.executor = executor
        self.lease = lease
        self.holder = holder or new_holder()
        self.lease_ttl = lease_ttl
        self._catalog: dict[str, CatalogRow] = {}
        self._holding = False
        self._held: int | None = None  # the epoch kept from one apply to the next
        self._held_since = 0.0  # time.monotonic() before the acquire that gave it
        self._took = False  # an apply inside holding_lease() sent a taking of the lease

    @contextmanager
    def holding_lease(self) -> Iterator[OperatorRuntime]:
        """Keep the lease from one apply to the next until the block ends, then give it back.

        The first apply inside takes the lease in its transaction (refused and audited, as any
        apply, while another runtime holds it) and the block keeps it; the next applies reuse
        its epoch. The runtime takes the lease again (the same epoch, a new expiry) in the
        first apply after half its TTL has passed by its own clock, and after an apply the
        database refused for a lease it no longer holds. While the block runs, no other runtime
        can apply under this lease: hold it only as long as applies follow one another. When
        the block ends, whatever epoch this holder holds is given back (by holder, so an epoch
        the runtime could not learn, a lost acknowledgement say, is given back too)."""
        if self._holding:
            raise RuntimeError("this runtime already holds its lease from one apply to the next")
        self._holding, self._took = True, False
        try:
            yield self
        finally:
            self._holding, self._held = False, None
            if self._took:
                self._release_held()

    # --- the modes ---------------------------------------------------------------------------

    def plan(self, command, params: Mapping | None, actor: str, *,
             correlation_id: str | None = None) -> RunResult:
        """Resolve and type the call, record a ``planned`` row; never runs command SQL.

        The row's evidence names the gates an apply needs and those shut now; the ledger adds
        the md5 of the catalog row, which a plan-bound apply must still match."""
        return self._invoke(self._call("plan", command, params, actor, correlation_id),
                            self._plan)

    def apply(self, command, params: Mapping | None, actor: str, *,
              plan_run_id: int | None = None, correlation_id: str | None = None) -> RunResult:
        """Run the governed statement and record its ``applied`` row in ONE transaction.

        Refused before any command SQL (and audited) when a gate it needs reads shut, when the
        lease is held by another runtime, when the statement is not governed, or when the plan
        it names may not be applied. The catalog row is read once per runtime (a read-only
        transaction); then ONE transaction: with ``plan_run_id``,
        ``fn_dot_iu_command_plan_check`` first (the logger's plan checks, made before anything
        else); ``fn_dot_iu_runtime_apply_begin``, taking the lease in the same statement unless
        ``holding_lease`` keeps it (holds the catalog row, the lease at its epoch and the
        gates; checks the binding and that the gates read open), the statement, the
        ``applied`` row (with ``plan_run_id`` the ledger also checks the plan binding), the
        lease given back; COMMIT. When apply_begin refuses, the runtime reads the catalog row,
        the gates and the lease afresh to say why: a binding that changed is applied once more
        with the fresh row; shut gates are a ``gate_shut`` refusal, a lease another runtime
        holds a ``lease_held`` one. A database error rolls all of it back, the lease taken
        with it, and is recorded, in a transaction of its own, as ``refused`` or ``failed``.

        A lost acknowledgement: when the connection drops while COMMIT is in flight, the call
        and its ``applied`` row committed together or not at all, and the runtime cannot tell
        which. It records nothing more (a ``failed`` row could contradict a committed
        ``applied`` one) and raises ``OutcomeUnknown`` carrying the call's correlation id (and
        plan run id), by which an auditor finds the ``applied`` row if there is one. A
        plan-bound apply is safe to retry: a plan is consumed at most once (23505).
        """
        if plan_run_id is not None and not (
                type(plan_run_id) is int and 0 < plan_run_id <= MAX_RUN_ID):
            raise ValueError("plan_run_id must be a run id (a positive integer)")
        call = self._call("apply", command, params, actor, correlation_id,
                          plan_run_id=plan_run_id)
        return self._invoke(call, self._apply)

    def verify(self, command, params: Mapping | None, actor: str, *,
               correlation_id: str | None = None) -> RunResult:
        """A READ ONLY transaction calling ``fn_iu_collection_validate(collection_id)`` when the
        call has a ``collection_id``, else ``fn_iu_collection_healthcheck()``; then a
        ``verified`` row in a transaction of its own."""
        return self._invoke(self._call("verify", command, params, actor, correlation_id),
                            self._verify)

    def prepare(self, command: str, params: Mapping | None = None) -> DotCommandPlan:
        """The DotCommandPlan of a call, read from the catalog; records nothing. Raises
        CatalogError, ParameterError, UnsafeStatement or DatabaseError."""
        [rows, _] = self.executor.run(catalog_statements(command), read_only=True)
        row = catalog_row(rows, command)
        self._catalog[command] = row  # an apply of this plan compares it with the kept row
        return build_plan(row, params)

    def reversal(self, command: str) -> Reversal:
        """The inverse command and a rollback note, from the catalog; runs and records nothing.
        CatalogError when the command is not catalogued."""
        [rows] = self.executor.run([reversal_statement(command)], read_only=True)
        if not rows:
            raise CatalogError(f"{command} is not in the command catalog")
        row = rows[0]
        return Reversal(command, row["mutating"], row["reversible"], row["inverse_command"],
                        row["inverse_target"], _reversal_note(row))

    # --- one invocation ------------------------------------------------------------------------

    def _call(self, mode, command, params, actor, correlation_id, plan_run_id=None) -> _Call:
        given_plan = command if isinstance(command, DotCommandPlan) else None
        if given_plan is not None:
            if params is not None:
                raise ValueError("give a DotCommandPlan or parameters, not both")
            params = {p.name: p.value for p in given_plan.params}
            command = given_plan.command
        if not isinstance(command, str):
            raise TypeError("command must be a command name or a DotCommandPlan")
        if SURROGATE.search(command) or "\x00" in command:
            raise ValueError("command must be a command name: valid Unicode without NUL")
        if params is not None and not isinstance(params, Mapping):
            raise TypeError("params must be a mapping of parameter names to values")
        if correlation_id is not None:
            try:
                correlation_id = str(uuid.UUID(str(correlation_id)))
            except ValueError:
                raise ValueError("correlation_id must be a uuid") from None
        elif plan_run_id is None:  # a plan-bound apply inherits its plan's correlation
            correlation_id = str(uuid.uuid4())
        problem = actor_problem(actor)
        return _Call(mode, command, params, given_plan, INVALID_ACTOR if problem else actor,
                     problem, correlation_id, plan_run_id,
                     names_digest(command, (params or {}).keys()))

    def _invoke(self, call: _Call, steps) -> RunResult:
        try:
            if call.actor_problem:
                raise _Stop("refused", "actor", call.actor_problem, actor_invalid=True)
            return steps(call)
        except _Stop as stop:
            return self._record(call, stop)
        except OutcomeUnknown as error:
            # Whichever write lost its acknowledgement (the apply, a plan's or verify's row, a
            # refused or failed row), the call's ids are how an auditor finds what committed.
            error.mode = call.mode
            error.correlation_id = error.correlation_id or call.correlation_id
            if error.plan_run_id is None:
                error.plan_run_id = call.plan_run_id
            raise

    def _record(self, call: _Call, stop: _Stop) -> RunResult:
        """The refused or failed row, in a transaction of its own."""
        facts = {"reason": stop.reason, **stop.facts}
        if stop.sqlstate:
            facts.update(sqlstate=stop.sqlstate, error_class=stop.sqlstate[:2])
        message = stop.message
        try:
            run_id = _scalar(self._run_one(log(call.command, call.mode, stop.status, call.actor,
                                               call.digest, call.evidence(**facts))))
        except DatabaseError as error:
            run_id = None
            message += f" (not recorded: SQLSTATE {error.sqlstate}: {error.message})"
        return call.result(stop.status, run_id, message, sqlstate=stop.sqlstate)

    def _run_one(self, statement: Statement, read_only: bool = False) -> list[dict]:
        return self.executor.run([statement], read_only=read_only)[0]

    def _read_catalog(self, call: _Call, statements: list) -> tuple[CatalogRow, list]:
        """Runs ``statements`` in a read-only transaction, the first of them reading the
        command's catalog row: keeps that row for later applies (forgets it when the command
        is no longer catalogued, refused as ``catalog``) and returns it with the rows of the
        other statements."""
        try:
            rows, *rest = self.executor.run(statements, read_only=True)
            catalog = catalog_row(rows, call.command)
        except DatabaseError as error:
            raise _database_stop(error, "resolve", statements=0) from None
        except CatalogError as error:
            self._catalog.pop(call.command, None)
            raise _Stop("refused", "catalog", str(error), statements=0) from None
        self._catalog[call.command] = catalog
        return catalog, rest

    def _resolve(self, call: _Call) -> tuple[CatalogRow, dict[str, bool]]:
        """The catalog row (kept for later applies) and the gates, read afresh."""
        catalog, [gates] = self._read_catalog(call, catalog_statements(call.command))
        return catalog, gate_states(gates)

    def _build(self, call: _Call, catalog: CatalogRow) -> DotCommandPlan:
        try:
            plan = build_plan(catalog, call.params)
        except ParameterError as error:
            raise _Stop("refused", "parameters", str(error), statements=0,
                        missing=list(error.missing), ill_typed=list(error.ill_typed),
                        unknown=error.unknown) from None
        except UnsafeStatement as error:
            raise _Stop("refused", "unsafe_statement", str(error), statements=0,
                        kind=error.kind) from None
        except CatalogError as error:
            raise _Stop("refused", "catalog", str(error), statements=0) from None
        call.digest = plan.params_digest
        given = call.given_plan
        if given is not None:
            self._governed(given, catalog)
            if given.catalog != catalog or given.params_digest != plan.params_digest:
                raise _Stop("refused", "stale_plan", f"{call.command}: the catalog row or the "
                            "digest changed since this DotCommandPlan was prepared",
                            statements=0)
        return plan

    @staticmethod
    def _governed(plan: DotCommandPlan, catalog: CatalogRow) -> None:
        try:
            _assert_governed(plan.statement, catalog)
        except UnsafeStatement as error:
            raise _Stop("refused", "unsafe_statement", str(error), statements=0,
                        kind=error.kind) from None

    def _log(self, call: _Call, status: str, evidence: str) -> int:
        try:
            return _scalar(self._run_one(log(call.command, call.mode, status, call.actor,
                                             call.digest, evidence)))
        except DatabaseError as error:
            raise _database_stop(error, "ledger") from None

    # --- plan ----------------------------------------------------------------------------------

    def _plan(self, call: _Call) -> RunResult:
        catalog, gates = self._resolve(call)
        plan = self._build(call, catalog)
        shut = [gate for gate in plan.gates_needed if not gates.get(gate)]
        run_id = self._log(call, "planned", call.evidence(
            statements=0, gates_needed=list(plan.gates_needed), shut_gates=shut))
        note = f"; shut now: {', '.join(shut)}" if shut else ""
        return call.result("planned", run_id,
                           f"planned; apply needs {', '.join(plan.gates_needed)}{note}")

    # --- apply ---------------------------------------------------------------------------------

    def _apply(self, call: _Call) -> RunResult:
        call.facts["lease"] = self.lease
        catalog = self._catalog.get(call.command)
        if catalog is None or (call.given_plan is not None
                               and call.given_plan.catalog != catalog):
            catalog = self._resolve_row(call)  # a DotCommandPlan is judged on a fresh row
        plan = self._build(call, catalog)
        return self._apply_once(call, catalog, plan, retry=True)

    def _resolve_row(self, call: _Call) -> CatalogRow:
        """The catalog row alone (kept for later applies), in a read-only transaction."""
        catalog, _ = self._read_catalog(call, apply_statements(call.command))
        return catalog

    def _kept_epoch(self) -> int | None:
        """The epoch kept inside ``holding_lease``, while less than half the TTL has passed
        since it was taken; None when the apply is to take the lease (again)."""
        if self._holding and self._held is not None and (
                time.monotonic() - self._held_since < self.lease_ttl / 2):
            return self._held
        return None

    def _apply_once(self, call: _Call, catalog: CatalogRow, plan: DotCommandPlan,
                    retry: bool) -> RunResult:
        """The apply transaction. The lease is either kept (``holding_lease``: apply_begin
        names its epoch) or taken by apply_begin's own statement, and then given back at the
        end of the transaction unless the runtime is to keep it."""
        self._governed(plan, catalog)  # right before the statement runs
        epoch = self._kept_epoch()
        taken = None if epoch is not None else (self.lease, self.holder)
        if epoch is not None:
            call.facts["epoch"] = epoch
            begin = Statement(APPLY_BEGIN, (call.command, self.lease, self.holder, str(epoch),
                                            catalog.binding))
        else:
            call.facts.pop("epoch", None)
            begin = Statement(APPLY_BEGIN_TAKING, (call.command, self.lease, self.holder,
                                                   self.lease, self.holder,
                                                   str(self.lease_ttl), catalog.binding))
        # (step, statement): a plan-bound apply checks its plan first, so a plan the ledger
        # would refuse never reaches the lease, the gates or the command's statement.
        steps: list[tuple[str, Statement]] = []
        if call.plan_run_id is not None:
            steps.append(("plan_check", Statement(PLAN_CHECK, (str(call.plan_run_id),
                                                               call.command, call.digest))))
        steps += [("apply_begin", begin), ("command", plan.call())]
        steps.append(("ledger", log_applied(
            call.command, call.actor, call.digest, call.evidence(statements=1),
            rows_of_step=len(steps) - 1, returns_set=catalog.returns_set, taken=taken)))
        if taken is not None and not self._holding:  # given back in the same transaction
            steps.append(("lease_release", Statement(LEASE_RELEASE_HELD, (
                self.lease, self.holder, self.lease, self.holder))))
        names = [name for name, _ in steps]
        since = time.monotonic()
        if taken is not None and self._holding:
            self._took = True
        try:
            results = dict(zip(names, self.executor.run([statement for _, statement in steps]),
                               strict=True))
        except OutcomeUnknown:
            self._held = None  # taken again at the next apply; given back by holder at the end
            raise  # _invoke adds the call's ids
        except DatabaseError as error:
            step = names[error.step] if error.step is not None else "commit"
            if step == "plan_check":
                raise _database_stop(error, step, reason="plan", statements=0) from None
            if step == "apply_begin" and error.sqlstate == LOCK_NOT_AVAILABLE:
                raise _Stop("refused", "lock_timeout", "apply_begin waited longer than "
                            "lock_timeout for a transaction in flight: another apply holding "
                            "the lease, a change of the catalog row, or a gate close",
                            error.sqlstate, step=step, statements=0) from None
            if step == "apply_begin" and error.sqlstate == "55000":
                return self._refused_at_begin(call, catalog, error, retry)
            raise _database_stop(error, step, statements=0 if step == "apply_begin" else 1,
                                 ) from None
        if taken is not None and self._holding:
            self._held, self._held_since = int(_scalar(results["apply_begin"])["epoch"]), since
        if call.correlation_id is None and "plan_check" in results:
            call.correlation_id = _scalar(results["plan_check"])  # the plan's, as the row's
        rows = results["command"]
        return call.result("applied", _scalar(results["ledger"]),
                           f"applied; {len(rows)} result row(s)", rows)

    def _refused_at_begin(self, call: _Call, catalog: CatalogRow, error: DatabaseError,
                          retry: bool) -> RunResult:
        """apply_begin refused (55000): read the catalog row, the gates and the lease afresh
        to say why. A changed binding is applied once more with the fresh row (no command SQL
        ran); a gate that reads shut is a gate_shut refusal; a lease another runtime holds a
        lease_held one; anything else (this runtime's lease lost) stays the database's
        refusal. A kept epoch is forgotten (and the lease taken again at the next apply) only
        when the lease is no longer this runtime's at that epoch."""
        fresh, [gates, lease] = self._read_catalog(
            call, diagnosis_statements(call.command, self.lease))
        row = lease[0] if lease else None
        if not (row and row["held"] and row["holder"] == self.holder
                and row["epoch"] == self._held):
            self._held = None
        if retry and fresh.binding != catalog.binding:
            return self._apply_once(call, fresh, self._build(call, fresh), retry=False)
        shut = [gate for gate in required_gates(fresh, "apply")
                if not gate_states(gates).get(gate)]
        if shut:
            raise _Stop("refused", "gate_shut", f"gate(s) shut: {', '.join(shut)}",
                        statements=0, shut_gates=shut)
        if lease and lease[0]["held"] and lease[0]["holder"] != self.holder:
            raise _Stop("refused", "lease_held",
                        f"lease {self.lease} is held by another runtime", statements=0)
        raise _database_stop(error, "apply_begin", statements=0)

    def _release_held(self) -> None:
        """Give back whatever epoch of the lease this holder holds."""
        try:
            self._run_one(Statement(LEASE_RELEASE_HELD, (self.lease, self.holder,
                                                         self.lease, self.holder)))
        except Exception:  # the lease ends at its TTL anyway
            pass

    # --- verify --------------------------------------------------------------------------------

    def _verify(self, call: _Call) -> RunResult:
        catalog, _ = self._resolve(call)
        plan = self._build(call, catalog)
        collection = plan.param("collection_id")
        if collection is not None and collection.pg_type == "uuid" and collection.value:
            probe, name = Statement(VERIFY_VALIDATE, (collection.text,)), "validate"
        else:
            probe, name = Statement(VERIFY_HEALTH), "healthcheck"
        try:
            rows = self._run_one(probe, read_only=True)
        except DatabaseError as error:
            raise _database_stop(error, "probe", statements=1, probe=name) from None
        run_id = self._log(call, "verified", call.evidence(statements=1, result_rows=len(rows),
                                                           probe=name))
        return call.result("verified", run_id, f"verified ({name}); {len(rows)} result row(s)",
                           rows)


def _reversal_note(row: dict) -> str:
    if not row["mutating"]:
        return "read-only: nothing to reverse"
    if not row["reversible"]:
        return ("irreversible: the catalog names no inverse; compensate by hand or restore "
                "from a backup")
    if row["inverse_command"]:
        return (f"reverse with {row['inverse_command']} ({row['inverse_target']}): plan it with "
                "the parameters that undo this run, review the plan, then apply --plan RUN_ID")
    return "reversible, but the catalog names no inverse command: reverse it by hand"
