"""The operator runtime's pure parts (SPEC 3.8), no database: typing and digests, governed
statements, derived gates, holder ids, the psql executor's script and command line, and an
import that does no I/O."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
from conftest import PROJECT_ROOT

from substrate.runtime import (
    RUNTIME_GATE,
    CatalogRow,
    DotCommandPlan,
    OperatorRuntime,
    ParameterError,
    UnsafeStatement,
    _assert_governed,
    governed_statement,
    psql_executor,
    psycopg_executor,
    required_gates,
)
from substrate.runtime.executors import RowCount, Statement
from substrate.runtime.params import canonical, names_digest, params_digest, sql_text, type_params
from substrate.runtime.plan import build_plan
from substrate.runtime.psql import _bind, _parse

ADD_PIECE = CatalogRow(
    command_name="dot_iu_add_piece", category="compose", mutating=True, reversible=True,
    target_function="public.fn_iu_collection_add_piece(uuid, uuid, integer)",
    inverse_command="dot_iu_remove_piece", required_gates=("iu_core.composer_enabled",),
    arg_names=("collection_id", "piece_id", "position"),
)
HEALTHCHECK = CatalogRow(
    command_name="dot_iu_healthcheck", category="health", mutating=False, reversible=True,
    target_function="public.fn_iu_collection_healthcheck()", inverse_command=None,
    required_gates=(), arg_names=(),
)
C, P = "6f1c0b7e-8d56-4d3e-9d7e-111111111111", "6f1c0b7e-8d56-4d3e-9d7e-222222222222"
ADD_PIECE_SQL = "SELECT public.fn_iu_collection_add_piece(%s::uuid, %s::uuid, %s::integer)"


# --- typing and the digest ---------------------------------------------------------------------

@pytest.mark.parametrize("pg_type, low, high", [
    ("smallint", -32768, 32767),
    ("integer", -2147483648, 2147483647),
    ("bigint", -9223372036854775808, 9223372036854775807),
])
def test_integers_are_accepted_exactly_within_their_types_range(pg_type, low, high):
    assert canonical(pg_type, low) == low and canonical(pg_type, str(high)) == high
    for outside in (low - 1, high + 1, str(high + 1)):
        with pytest.raises(ValueError, match=f"expected {pg_type}"):
            canonical(pg_type, outside)


@pytest.mark.parametrize("pg_type, value", [
    ("integer", True), ("integer", 1.0), ("integer", "1.5"), ("integer", " 1"), ("integer", ""),
    ("numeric", "NaN"), ("numeric", float("inf")), ("numeric", "1,5"), ("boolean", "maybe"),
    ("boolean", 1), ("uuid", "not-a-uuid"), ("uuid", 42), ("text", 42), ("text", "a\x00b"),
    ("text", "\ud800"), ("jsonb", "{bad json"), ("jsonb", "NaN"), ("jsonb", {1: "x"}),
    ("jsonb", {"a": "\x00"}), ("uuid[]", "not json"), ("uuid[]", [C, "nope"]),
    ("integer[]", [[1, 2], [3, 4]]), ("integer[]", {"a": 1}),
])
def test_ill_typed_values_are_refused(pg_type, value):
    with pytest.raises(ValueError):
        canonical(pg_type, value)


def test_every_spelling_of_a_value_has_one_canonical_form():
    upper = C.upper()
    assert canonical("uuid", upper) == canonical("uuid", "{" + C + "}") == C
    assert canonical("uuid", uuid.UUID(C)) == canonical("uuid", C.replace("-", "")) == C
    assert canonical("numeric", "1E+3") == canonical("numeric", 1000) == "1000"
    assert canonical("numeric", Decimal("-0.00")) == "0.00"
    assert canonical("numeric", "1.50") == "1.50"  # the scale is part of a numeric value
    assert canonical("boolean", "ON") is canonical("boolean", True) is True
    assert canonical("jsonb", '{"b": 1, "a": [true, null]}') == {"a": [True, None], "b": 1}
    assert canonical("uuid[]", json.dumps([upper, None])) == canonical("uuid[]", [C, None])


def test_values_are_bound_as_text_the_server_casts_and_array_items_survive_quotes():
    assert sql_text("jsonb", {"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert sql_text("boolean", False) == "false"
    assert sql_text("text[]", ['say "hi"', "back\\slash", None, "a,b}"]) == (
        '{"say \\"hi\\"","back\\\\slash",NULL,"a,b}"}')
    assert sql_text("uuid", None) is None


def test_params_digest_is_an_md5_of_the_canonical_call_whatever_the_spelling_or_order():
    names, types = ("collection_id", "piece_id", "position"), ("uuid", "uuid", "integer")
    one = type_params("dot_iu_add_piece", names, types,
                      {"position": "3", "piece_id": P.upper(), "collection_id": C})
    two = type_params("dot_iu_add_piece", names, types,
                      {"collection_id": uuid.UUID(C), "piece_id": P, "position": 3})
    digest = params_digest("dot_iu_add_piece", one)
    assert digest == params_digest("dot_iu_add_piece", two)
    assert len(digest) == 32 and digest == digest.lower() and int(digest, 16) >= 0
    assert digest != params_digest("dot_iu_remove_piece", one)
    three = type_params("dot_iu_add_piece", names, types,
                        {"collection_id": C, "piece_id": P, "position": 4})
    assert params_digest("dot_iu_add_piece", three) != digest


def test_missing_unknown_and_ill_typed_parameters_are_refused_naming_no_value():
    with pytest.raises(ParameterError) as caught:
        type_params("dot_iu_add_piece", ("collection_id", "piece_id", "position"),
                    ("uuid", "uuid", "integer"),
                    {"collection_id": "SECRET-VALUE-1", "SECRET_NAME": 1, "position": 3})
    error = caught.value
    assert (error.missing, error.ill_typed, error.unknown) == (("piece_id",),
                                                              ("collection_id",), 1)
    assert "SECRET" not in str(error)
    assert "missing parameter(s): piece_id" in str(error)
    assert "collection_id: expected uuid" in str(error)


def test_a_digest_of_untypeable_values_covers_only_the_command_and_the_names():
    assert names_digest("dot_iu_x", ["b", "a"]) == names_digest("dot_iu_x", ("a", "b"))
    assert names_digest("dot_iu_x", ["a"]) != names_digest("dot_iu_y", ["a"])


# --- governed statements ---------------------------------------------------------------------

def test_the_governed_statement_is_built_from_the_catalog_row_alone():
    assert governed_statement(ADD_PIECE) == ADD_PIECE_SQL
    assert governed_statement(HEALTHCHECK) == "SELECT public.fn_iu_collection_healthcheck()"
    assert governed_statement({"target_function": "public.fn_iu_collection_reorder(uuid,"
                               " uuid[])"}) == (
        "SELECT public.fn_iu_collection_reorder(%s::uuid, %s::uuid[])")
    _assert_governed(ADD_PIECE_SQL, ADD_PIECE)


@pytest.mark.parametrize("statement, kind", [
    ("DELETE FROM public.dot_iu_command_run", "dml"),
    ("INSERT INTO public.dot_config VALUES ('k', 'true')", "dml"),
    ("UPDATE public.dot_config SET value = 'true'", "dml"),
    ("WITH x AS (DELETE FROM t RETURNING 1) SELECT 1", "dml"),
    ("DROP TABLE public.dot_iu_command_run", "ddl"),
    ("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "ddl"),
    ("ALTER ROLE dot_iu_runtime SUPERUSER", "ddl"),
    (ADD_PIECE_SQL + "; DROP TABLE public.dot_config", "several_statements"),
    ("SELECT 1; SELECT public.fn_iu_collection_add_piece(%s::uuid, %s::uuid, %s::integer)",
     "several_statements"),
    (ADD_PIECE_SQL + " -- trailing", "comment"),
    ("SELECT /* hi */ public.fn_iu_collection_add_piece(%s::uuid, %s::uuid, %s::integer)",
     "comment"),
    ("SELECT public.fn_iu_gate_open(%s, %s, %s, %s, %s)", "other_call"),
    ("SELECT public.fn_iu_collection_remove_piece(%s::uuid, %s::uuid)", "other_call"),
    ("SELECT public.fn_iu_collection_add_piece(%s::uuid, %s::uuid, %s::bigint)", "other_call"),
    ("SELECT public.fn_iu_collection_add_piece(%s, %s, %s)", "other_call"),
    ("select public.fn_iu_collection_add_piece(%s::uuid, %s::uuid, %s::integer)", "other_call"),
    ("SELECT public.fn_iu_collection_add_piece('" + C + "'::uuid, %s::uuid, %s::integer)",
     "other_call"),
    (b"SELECT 1", "not_sql"),
])
def test_assert_governed_refuses_anything_but_the_catalogued_call(statement, kind):
    with pytest.raises(UnsafeStatement) as caught:
        _assert_governed(statement, ADD_PIECE)
    assert caught.value.kind == kind
    assert "refused as unsafe" in str(caught.value)


def test_assert_governed_refuses_a_catalog_row_that_is_not_a_bindable_signature():
    for target in ("public.f(uuid); DROP TABLE x", "f(uuid)", "public.f(point)",
                   "public.f(integer[][])"):
        with pytest.raises(UnsafeStatement) as caught:
            _assert_governed("SELECT public.f(%s::uuid)", {"target_function": target})
        assert caught.value.kind == "catalog"


def test_a_plan_holds_the_typed_call_its_digest_and_the_gates_an_apply_needs():
    plan = build_plan(ADD_PIECE, {"collection_id": C, "piece_id": P, "position": "7"})
    assert isinstance(plan, DotCommandPlan)
    assert plan.statement == ADD_PIECE_SQL
    assert plan.call() == Statement(ADD_PIECE_SQL, (C, P, "7"))
    assert plan.gates_needed == (RUNTIME_GATE, "iu_core.composer_enabled")
    assert plan.param("position").value == 7


def test_required_gates_derive_from_the_catalog_row_and_only_apply_needs_any():
    assert required_gates(ADD_PIECE, "apply") == (RUNTIME_GATE, "iu_core.composer_enabled")
    assert required_gates(HEALTHCHECK, "apply") == (RUNTIME_GATE,)
    assert required_gates(ADD_PIECE, "plan") == required_gates(ADD_PIECE, "verify") == ()
    plan = build_plan(HEALTHCHECK, {})
    assert required_gates(plan, "apply") == (RUNTIME_GATE,)
    with pytest.raises(ValueError):
        required_gates(ADD_PIECE, "rollback")


# --- leases -------------------------------------------------------------------------------------

def test_holders_are_distinct_per_runtime_object_and_per_process_on_one_host():
    one, two = OperatorRuntime(None), OperatorRuntime(None)
    assert one.holder != two.holder
    host, pid, token = one.holder.split(":")
    assert pid == str(os.getpid()) and host and len(token) == 16
    code = "from substrate.runtime import OperatorRuntime; print(OperatorRuntime(None).holder)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=PROJECT_ROOT, check=True).stdout.strip()
    assert other.split(":")[0] == host and other.split(":")[1] != pid
    assert OperatorRuntime(None, holder="me").holder == "me"
    with pytest.raises(ValueError):
        OperatorRuntime(None, lease_ttl=0)


def test_executors_connect_on_first_use_not_when_made():
    psycopg_executor("host=127.0.0.1 port=1 user=nobody dbname=none")
    psql_executor("127.0.0.1", 1, "nobody", "none", psql="/nonexistent/psql")


# --- the psql executor's script and command line ----------------------------------------------

NASTY = "tab\there\nnewline 'quote' \"dq\" ; \\q :var |sep| $$ %s ✓"


def test_psql_script_carries_values_as_hex_only():
    executor = psql_executor("127.0.0.1", 5432, "svc", "iu core", psql="psql")
    script = executor.script([Statement("SELECT public.f(%s::text, %s::integer)",
                                        (NASTY, None)),
                              Statement("SELECT %s::integer", (RowCount(0),))],
                             read_only=False, nonce="abc123")
    assert NASTY.encode().hex() in script
    for fragment in ("\there", "'quote'", "\\q", ":var", "|sep|", "✓"):
        assert fragment not in script
    assert script.startswith("SET client_min_messages = error;")
    assert "BEGIN;" in script and script.rstrip().endswith("\\echo abc123 C")
    assert "\\set rt_rows_0 :ROW_COUNT" in script and ":'rt_rows_0'::integer" in script


def test_psql_executor_refuses_statements_psql_would_split_or_interpret():
    executor = psql_executor("h", 1, "u", "d")
    for sql in ("SELECT 1; SELECT 2", "SELECT '\\q'"):
        with pytest.raises(ValueError):
            executor.script([Statement(sql)], read_only=True, nonce="n")
    with pytest.raises(ValueError):
        _bind(Statement("SELECT %s::text, %s::text", ("one",)))


def test_psql_output_parsing_reads_only_marked_lines_of_its_own_nonce():
    row = {"v": NASTY}
    hexed = json.dumps(row).encode().hex()
    out = "\n".join([
        "n0nce B", f"n0nce R 0 {hexed}", f"other R 0 {hexed}", "n0nce D 0", "noise",
        "n0nce C", "",
    ]).encode()
    assert _parse(out, "n0nce", 1) == ([[row]], True, 1, True)


def test_a_remote_psql_command_line_is_one_shlex_quoted_argument_that_resplits_exactly():
    executor = psql_executor("db host", 5432, "o'brien", "iu; core", psql="/opt/pg bin/psql",
                             remote=("ssh", "db1"))
    argv = executor.argv()
    assert argv[:2] == ["ssh", "db1"] and len(argv) == 3
    local = psql_executor("db host", 5432, "o'brien", "iu; core",
                          psql="/opt/pg bin/psql").argv()
    assert shlex.split(argv[2]) == local
    assert local[:6] == ["/opt/pg bin/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]


def test_importing_the_runtime_does_no_io_and_imports_no_database_driver():
    code = ("import sys, json, substrate.runtime, substrate.runtime.cli; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('psycopg', 'sqlalchemy', 'alembic'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_applied_row_counts_a_set_returning_target_and_writes_one_for_any_other():
    from substrate.runtime.statements import log_applied

    counted = log_applied("dot_iu_healthcheck", "alice", "d" * 32, "{}", rows_of_step=1)
    assert counted.params[-1] == RowCount(1)  # the executor waits for statement 1's rows
    single = log_applied("dot_iu_healthcheck", "alice", "d" * 32, "{}", rows_of_step=1,
                         returns_set=False)
    assert single.params[-1] == "1" and single.sql == counted.sql  # nothing to wait for
