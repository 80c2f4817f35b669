"""Tests for tests/pgtap.py: every assertion passes on a right schema and fails,
with pgTAP-style have/want diagnostics, on a wrong one.

Each test builds its own small schema in `empty_db`, a function-scoped
autocommit psycopg connection to a fresh, empty database on a real server.
"""

from __future__ import annotations

import pgtap
import psycopg
import pytest

# A predefined role: grants to it live only in the throwaway database, so the
# privilege tests need no CREATEROLE and leave nothing behind in the cluster.
GRANTEE = "pg_monitor"


def diag(caught: pytest.ExceptionInfo[AssertionError]) -> list[str]:
    """The failure message as stripped lines: the description, then diagnostics."""
    return [line.strip() for line in str(caught.value).splitlines()]


@pytest.fixture
def widget(empty_db: psycopg.Connection) -> psycopg.Connection:
    """A table with a primary key, a check, a default, a comment and a view."""
    empty_db.execute(
        """
        CREATE TABLE public.widget (
            widget_id  bigint PRIMARY KEY,
            name       varchar(64) NOT NULL,
            price      numeric(10,2) CONSTRAINT ck_widget_price_positive CHECK (price > 0),
            tags       text[],
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE VIEW public.widget_names AS SELECT name FROM public.widget;
        """
    )
    return empty_db


def create_fn(conn: psycopg.Connection, options: str = "", args: str = "p_key text") -> None:
    """public.fn_x(<args>) returning integer, with extra CREATE FUNCTION options."""
    conn.execute(
        f"CREATE FUNCTION public.fn_x({args}) RETURNS integer LANGUAGE sql {options} "
        "AS $$ SELECT 1 $$"
    )


# ---------------------------------------------------------------------------
# Diagnostics format
# ---------------------------------------------------------------------------


def test_failure_message_is_the_description_then_aligned_have_and_want(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError) as caught:
        pgtap.is_definer(empty_db, "fn_x", ["text"])
    assert str(caught.value) == (
        "Function public.fn_x(text) should be security definer\n"
        "        have: invoker\n"
        "        want: definer"
    )


def test_description_argument_replaces_the_first_line(empty_db):
    with pytest.raises(AssertionError, match=r"^widgets are the product$"):
        pgtap.has_table(empty_db, "widget", description="widgets are the product")


def test_assertions_ignore_the_callers_row_factory(widget):
    widget.row_factory = psycopg.rows.dict_row
    pgtap.col_type_is(widget, "widget", "name", "varchar(64)")
    pgtap.results_eq(widget, "SELECT 1, 'a'", [(1, "a")])


# ---------------------------------------------------------------------------
# Tables, views, columns
# ---------------------------------------------------------------------------


def test_has_table_passes_for_an_existing_table(widget):
    assert pgtap.has_table(widget, "widget") is None


def test_has_table_fails_for_a_missing_table(empty_db):
    with pytest.raises(AssertionError, match=r"^Table public\.widget should exist$"):
        pgtap.has_table(empty_db, "widget")


def test_has_table_fails_when_the_name_is_a_view(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_table(widget, "widget_names")
    assert diag(caught) == [
        "Table public.widget_names should exist",
        "have: public.widget_names is a view",
        "want: public.widget_names is a table",
    ]


def test_has_table_looks_in_the_given_schema(empty_db):
    empty_db.execute("CREATE SCHEMA app; CREATE TABLE app.job (id int)")
    pgtap.has_table(empty_db, "job", schema="app")
    with pytest.raises(AssertionError, match=r"^Table public\.job should exist$"):
        pgtap.has_table(empty_db, "job")


def test_has_table_accepts_a_partitioned_table(empty_db):
    empty_db.execute("CREATE TABLE public.event (at date) PARTITION BY RANGE (at)")
    pgtap.has_table(empty_db, "event")


def test_hasnt_table_passes_for_a_missing_table(empty_db):
    pgtap.hasnt_table(empty_db, "widget")


def test_hasnt_table_fails_for_an_existing_table(widget):
    with pytest.raises(AssertionError, match=r"^Table public\.widget should not exist$"):
        pgtap.hasnt_table(widget, "widget")


def test_has_view_passes_for_an_existing_view(widget):
    pgtap.has_view(widget, "widget_names")


def test_has_view_fails_when_the_name_is_a_table(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_view(widget, "widget")
    assert diag(caught) == [
        "View public.widget should exist",
        "have: public.widget is a table",
        "want: public.widget is a view",
    ]


def test_hasnt_view_passes_for_a_missing_view(widget):
    pgtap.hasnt_view(widget, "widget")


def test_hasnt_view_fails_for_an_existing_view(widget):
    with pytest.raises(AssertionError, match=r"^View public\.widget_names should not exist$"):
        pgtap.hasnt_view(widget, "widget_names")


def test_has_column_passes_for_table_and_view_columns(widget):
    pgtap.has_column(widget, "widget", "price")
    pgtap.has_column(widget, "widget_names", "name")


def test_has_column_fails_for_a_missing_column(widget):
    with pytest.raises(AssertionError, match=r"^Column public\.widget\.colour should exist$"):
        pgtap.has_column(widget, "widget", "colour")


def test_has_column_fails_for_a_dropped_column(widget):
    widget.execute("ALTER TABLE public.widget DROP COLUMN tags")
    with pytest.raises(AssertionError, match=r"^Column public\.widget\.tags should exist$"):
        pgtap.has_column(widget, "widget", "tags")


def test_col_type_is_passes_with_aliases_and_modifiers(widget):
    pgtap.col_type_is(widget, "widget", "widget_id", "int8")
    pgtap.col_type_is(widget, "widget", "name", "VARCHAR(64)")
    pgtap.col_type_is(widget, "widget", "price", "numeric(10, 2)")
    pgtap.col_type_is(widget, "widget", "tags", "text[]")
    pgtap.col_type_is(widget, "widget", "created_at", "timestamptz")


def test_col_type_is_normalises_a_timestamp_precision(empty_db):
    empty_db.execute("CREATE TABLE public.t (at timestamp(3) with time zone, n int4[])")
    pgtap.col_type_is(empty_db, "t", "at", "timestamptz(3)")
    pgtap.col_type_is(empty_db, "t", "n", "int[]")


def test_col_type_is_fails_on_a_wrong_type(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_type_is(widget, "widget", "widget_id", "int")
    assert diag(caught) == [
        "Column public.widget.widget_id should be type integer",
        "have: bigint",
        "want: integer",
    ]


def test_col_type_is_fails_on_a_wrong_type_modifier(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_type_is(widget, "widget", "name", "varchar(32)")
    assert diag(caught)[1:] == ["have: character varying(64)", "want: character varying(32)"]


def test_col_type_is_fails_on_a_missing_column(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_type_is(widget, "widget", "colour", "text")
    assert diag(caught) == [
        "Column public.widget.colour should be type text",
        "Column public.widget.colour does not exist",
    ]


def test_col_not_null_passes_on_a_not_null_column(widget):
    pgtap.col_not_null(widget, "widget", "name")


def test_col_not_null_fails_on_a_nullable_column(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_not_null(widget, "widget", "price")
    assert diag(caught) == [
        "Column public.widget.price should be NOT NULL",
        "have: NULL allowed",
        "want: NOT NULL",
    ]


def test_col_is_null_passes_on_a_nullable_column(widget):
    pgtap.col_is_null(widget, "widget", "price")


def test_col_is_null_fails_on_a_not_null_column(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_is_null(widget, "widget", "name")
    assert diag(caught) == [
        "Column public.widget.name should allow NULL",
        "have: NOT NULL",
        "want: NULL allowed",
    ]


def test_col_has_default_passes_on_a_column_with_a_default(widget):
    pgtap.col_has_default(widget, "widget", "created_at")


def test_col_has_default_fails_on_a_column_without_one(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_has_default(widget, "widget", "name")
    assert diag(caught) == [
        "Column public.widget.name should have a default",
        "have: no default",
        "want: a default",
    ]


def test_col_default_is_passes_on_the_pg_get_expr_text(widget):
    pgtap.col_default_is(widget, "widget", "created_at", "now()")


def test_col_default_is_fails_on_a_different_default(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_default_is(widget, "widget", "created_at", "clock_timestamp()")
    assert diag(caught) == [
        "Column public.widget.created_at should default to clock_timestamp()",
        "have: now()",
        "want: clock_timestamp()",
    ]


def test_col_default_is_fails_on_a_column_without_a_default(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.col_default_is(widget, "widget", "name", "''::character varying")
    assert diag(caught)[1:] == ["have: no default", "want: ''::character varying"]


# ---------------------------------------------------------------------------
# Keys, checks, indexes, triggers
# ---------------------------------------------------------------------------


def test_has_pk_passes_on_a_table_with_a_primary_key(widget):
    pgtap.has_pk(widget, "widget")


def test_has_pk_fails_on_a_table_without_one(empty_db):
    empty_db.execute("CREATE TABLE public.heap (x int)")
    with pytest.raises(AssertionError) as caught:
        pgtap.has_pk(empty_db, "heap")
    assert diag(caught) == [
        "Table public.heap should have a primary key",
        "have: no primary key",
        "want: a primary key",
    ]


def test_has_pk_fails_on_a_missing_table(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_pk(empty_db, "heap")
    assert diag(caught) == [
        "Table public.heap should have a primary key",
        "Table public.heap does not exist",
    ]


def test_col_is_pk_passes_on_single_and_composite_keys(widget):
    widget.execute("CREATE TABLE public.pair (a int, b int, PRIMARY KEY (b, a))")
    pgtap.col_is_pk(widget, "widget", "widget_id")
    pgtap.col_is_pk(widget, "pair", ["b", "a"])


def test_col_is_pk_fails_on_a_wrong_column_order(empty_db):
    empty_db.execute("CREATE TABLE public.pair (a int, b int, PRIMARY KEY (b, a))")
    with pytest.raises(AssertionError) as caught:
        pgtap.col_is_pk(empty_db, "pair", ["a", "b"])
    assert diag(caught) == [
        "Columns public.pair(a, b) should be a primary key",
        "have: public.pair(b, a)",
        "want: public.pair(a, b)",
    ]


def test_col_is_pk_fails_on_a_table_without_a_primary_key(empty_db):
    empty_db.execute("CREATE TABLE public.heap (x int)")
    with pytest.raises(AssertionError) as caught:
        pgtap.col_is_pk(empty_db, "heap", "x")
    assert diag(caught) == [
        "Column public.heap(x) should be a primary key",
        "have: no primary key",
        "want: public.heap(x)",
    ]


@pytest.fixture
def command_log(empty_db: psycopg.Connection) -> psycopg.Connection:
    empty_db.execute(
        """
        CREATE TABLE public.command_log (
            id int, command_name text, created_at timestamptz, payload jsonb
        );
        CREATE INDEX ix_command_log_command_name_created_at
            ON public.command_log (command_name, created_at DESC) INCLUDE (payload);
        CREATE INDEX ix_command_log_lower_command_name
            ON public.command_log (lower(command_name), id NULLS FIRST);
        """
    )
    return empty_db


def test_has_index_passes_on_an_existing_index(command_log):
    pgtap.has_index(command_log, "command_log", "ix_command_log_command_name_created_at")


def test_has_index_passes_on_key_columns_with_direction(command_log):
    pgtap.has_index(
        command_log,
        "command_log",
        "ix_command_log_command_name_created_at",
        ["command_name", "created_at desc"],
    )


def test_has_index_passes_on_expressions_and_nulls_ordering(command_log):
    pgtap.has_index(
        command_log,
        "command_log",
        "ix_command_log_lower_command_name",
        ["lower(command_name)", "id ASC NULLS FIRST"],
    )


def test_has_index_fails_on_a_missing_index(command_log):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_index(command_log, "command_log", "ix_command_log_created_at")
    assert diag(caught) == [
        "Index ix_command_log_created_at should exist on public.command_log",
        "have: ix_command_log_command_name_created_at, ix_command_log_lower_command_name",
        "want: ix_command_log_created_at",
    ]


def test_has_index_fails_on_a_wrong_column_order(empty_db):
    empty_db.execute(
        "CREATE TABLE public.command_log (command_name text, created_at timestamptz);"
        "CREATE INDEX ix_command_log_command_name_created_at"
        "    ON public.command_log (created_at DESC, command_name)"
    )
    with pytest.raises(AssertionError) as caught:
        pgtap.has_index(
            empty_db,
            "command_log",
            "ix_command_log_command_name_created_at",
            ["command_name", "created_at DESC"],
        )
    assert diag(caught) == [
        "Index ix_command_log_command_name_created_at should exist on "
        "public.command_log(command_name, created_at DESC)",
        "have: ix_command_log_command_name_created_at ON "
        "public.command_log(created_at DESC, command_name)",
        "want: ix_command_log_command_name_created_at ON "
        "public.command_log(command_name, created_at DESC)",
    ]


def test_has_index_fails_on_a_wrong_sort_direction(empty_db):
    empty_db.execute(
        "CREATE TABLE public.command_log (command_name text, created_at timestamptz);"
        "CREATE INDEX ix_command_log_command_name_created_at"
        "    ON public.command_log (command_name, created_at)"
    )
    with pytest.raises(AssertionError) as caught:
        pgtap.has_index(
            empty_db,
            "command_log",
            "ix_command_log_command_name_created_at",
            ["command_name", "created_at DESC"],
        )
    assert diag(caught)[1:] == [
        "have: ix_command_log_command_name_created_at ON "
        "public.command_log(command_name, created_at)",
        "want: ix_command_log_command_name_created_at ON "
        "public.command_log(command_name, created_at DESC)",
    ]


def test_has_index_does_not_count_include_columns_as_keys(command_log):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_index(
            command_log,
            "command_log",
            "ix_command_log_command_name_created_at",
            ["command_name", "created_at DESC", "payload"],
        )
    assert diag(caught)[1] == (
        "have: ix_command_log_command_name_created_at ON "
        "public.command_log(command_name, created_at DESC)"
    )


def test_has_check_passes_for_any_and_for_a_named_check(widget):
    pgtap.has_check(widget, "widget")
    pgtap.has_check(widget, "widget", "ck_widget_price_positive")


def test_has_check_fails_on_a_missing_named_check(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_check(widget, "widget", "ck_widget_name_not_blank")
    assert diag(caught) == [
        "Table public.widget should have check constraint ck_widget_name_not_blank",
        "have: ck_widget_price_positive",
        "want: ck_widget_name_not_blank",
    ]


def test_has_check_fails_on_a_table_without_checks(empty_db):
    empty_db.execute("CREATE TABLE public.heap (x int)")
    with pytest.raises(AssertionError) as caught:
        pgtap.has_check(empty_db, "heap")
    assert diag(caught) == [
        "Table public.heap should have a check constraint",
        "have: none",
        "want: a check constraint",
    ]


def test_check_def_contains_passes_on_a_fragment_of_the_definition(widget):
    pgtap.check_def_contains(widget, "widget", "ck_widget_price_positive", "price > 0")


def test_check_def_contains_fails_on_a_different_rule(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.check_def_contains(widget, "widget", "ck_widget_price_positive", "price >= 0")
    assert diag(caught) == [
        "Check constraint ck_widget_price_positive on public.widget should contain price >= 0",
        "have: CHECK (price > 0::numeric)",
        "want: contains price >= 0",
    ]


@pytest.fixture
def orders(widget: psycopg.Connection) -> psycopg.Connection:
    widget.execute(
        """
        CREATE TABLE public.widget_order (
            order_id  int PRIMARY KEY,
            widget_id bigint CONSTRAINT fk_widget_order_widget REFERENCES public.widget
        );
        CREATE FUNCTION public.fn_tg_touch() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RETURN NEW; END $$;
        CREATE FUNCTION public.fn_tg_other() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER tg_widget_order_touch BEFORE UPDATE ON public.widget_order
            FOR EACH ROW EXECUTE FUNCTION public.fn_tg_touch();
        """
    )
    return widget


def test_has_fk_passes_for_any_and_for_a_named_foreign_key(orders):
    pgtap.has_fk(orders, "widget_order")
    pgtap.has_fk(orders, "widget_order", "fk_widget_order_widget")


def test_has_fk_fails_on_a_table_without_foreign_keys(orders):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_fk(orders, "widget")
    assert diag(caught) == [
        "Table public.widget should have a foreign key",
        "have: none",
        "want: a foreign key",
    ]


def test_has_fk_fails_on_a_missing_named_foreign_key(orders):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_fk(orders, "widget_order", "fk_widget_order_customer")
    assert diag(caught)[1:] == ["have: fk_widget_order_widget", "want: fk_widget_order_customer"]


def test_has_trigger_passes_on_an_existing_trigger(orders):
    pgtap.has_trigger(orders, "widget_order", "tg_widget_order_touch")


def test_has_trigger_fails_on_a_missing_trigger_and_ignores_internal_ones(orders):
    # The foreign key's internal RI triggers must not be listed as "have".
    with pytest.raises(AssertionError) as caught:
        pgtap.has_trigger(orders, "widget", "tg_widget_touch")
    assert diag(caught) == [
        "Table public.widget should have trigger tg_widget_touch",
        "have: none",
        "want: tg_widget_touch",
    ]


def test_trigger_is_passes_on_plain_and_qualified_function_names(orders):
    pgtap.trigger_is(orders, "widget_order", "tg_widget_order_touch", "fn_tg_touch")
    pgtap.trigger_is(orders, "widget_order", "tg_widget_order_touch", "public.fn_tg_touch")


def test_trigger_is_fails_when_the_trigger_calls_another_function(orders):
    with pytest.raises(AssertionError) as caught:
        pgtap.trigger_is(orders, "widget_order", "tg_widget_order_touch", "fn_tg_other")
    assert diag(caught) == [
        "Trigger tg_widget_order_touch on public.widget_order should call fn_tg_other()",
        "have: public.fn_tg_touch()",
        "want: fn_tg_other()",
    ]


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------


def test_has_function_passes_with_type_aliases(empty_db):
    create_fn(
        empty_db,
        args="p_a int4, p_b bool, p_c varchar, p_d timestamptz, p_e int8, p_f uuid[], p_g jsonb",
    )
    pgtap.has_function(
        empty_db, "fn_x", ["int", "bool", "varchar", "timestamptz", "int8", "uuid[]", "jsonb"]
    )
    pgtap.has_function(
        empty_db,
        "fn_x",
        [
            "integer",
            "boolean",
            "character varying",
            "timestamp with time zone",
            "bigint",
            "uuid[]",
            "jsonb",
        ],
    )


def test_has_function_without_args_passes_for_any_overload(empty_db):
    create_fn(empty_db, args="p_key text")
    create_fn(empty_db, args="p_key integer")
    pgtap.has_function(empty_db, "fn_x")


def test_has_function_passes_for_a_function_without_arguments(empty_db):
    create_fn(empty_db, args="")
    pgtap.has_function(empty_db, "fn_x", [])


def test_has_function_fails_and_lists_the_overloads_that_exist(empty_db):
    create_fn(empty_db, args="p_key integer")
    with pytest.raises(AssertionError) as caught:
        pgtap.has_function(empty_db, "fn_x", ["text"])
    assert diag(caught) == [
        "Function public.fn_x(text) should exist",
        "have: public.fn_x(integer)",
        "want: public.fn_x(text)",
    ]


def test_has_function_fails_when_no_function_has_the_name(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_function(empty_db, "fn_x")
    assert diag(caught) == ["Function public.fn_x should exist", "have: none", "want: public.fn_x"]


def test_hasnt_function_passes_when_only_another_overload_exists(empty_db):
    create_fn(empty_db, args="p_key integer")
    pgtap.hasnt_function(empty_db, "fn_x", ["text"])
    pgtap.hasnt_function(empty_db, "fn_y")


def test_hasnt_function_fails_on_a_leftover_overload(empty_db):
    create_fn(empty_db, args="p_key text")
    create_fn(empty_db, args="p_key text, p_value int")
    with pytest.raises(AssertionError) as caught:
        pgtap.hasnt_function(empty_db, "fn_x")
    assert diag(caught) == [
        "Function public.fn_x should not exist",
        "have: public.fn_x(text), public.fn_x(text, integer)",
        "want: none",
    ]


def test_function_assertions_fail_on_a_missing_function(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.volatility_is(empty_db, "fn_x", ["text"], "stable")
    assert diag(caught) == [
        "Function public.fn_x(text) should be STABLE",
        "Function public.fn_x(text) does not exist",
    ]


def test_function_assertions_without_args_fail_on_an_overloaded_name(empty_db):
    create_fn(empty_db, args="p_key text")
    create_fn(empty_db, args="p_key integer")
    with pytest.raises(AssertionError) as caught:
        pgtap.is_definer(empty_db, "fn_x", None)
    assert diag(caught) == [
        "Function public.fn_x should be security definer",
        "Function public.fn_x is overloaded; pass args to choose one",
    ]


def test_function_assertions_without_args_use_the_only_overload(empty_db):
    create_fn(empty_db, "STABLE")
    pgtap.volatility_is(empty_db, "fn_x", None, "stable")


def test_function_returns_passes_on_scalar_and_set_returning_functions(empty_db):
    create_fn(empty_db)
    empty_db.execute(
        "CREATE FUNCTION public.fn_keys() RETURNS SETOF text LANGUAGE sql AS $$ SELECT 'a' $$"
    )
    pgtap.function_returns(empty_db, "fn_x", ["text"], "int4")
    pgtap.function_returns(empty_db, "fn_keys", [], "SETOF text")


def test_function_returns_fails_on_a_different_return_type(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError) as caught:
        pgtap.function_returns(empty_db, "fn_x", ["text"], "bigint")
    assert diag(caught) == [
        "Function public.fn_x(text) should return bigint",
        "have: integer",
        "want: bigint",
    ]


def test_volatility_is_passes_on_the_declared_volatility(empty_db):
    create_fn(empty_db, "STABLE")
    pgtap.volatility_is(empty_db, "fn_x", ["text"], "stable")


def test_volatility_is_fails_on_a_volatile_function(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError) as caught:
        pgtap.volatility_is(empty_db, "fn_x", ["text"], "immutable")
    assert diag(caught) == [
        "Function public.fn_x(text) should be IMMUTABLE",
        "have: VOLATILE",
        "want: IMMUTABLE",
    ]


def test_volatility_is_rejects_an_unknown_volatility(empty_db):
    with pytest.raises(ValueError, match="immutable, stable or volatile"):
        pgtap.volatility_is(empty_db, "fn_x", ["text"], "pure")


def test_is_definer_passes_on_a_security_definer_function(empty_db):
    create_fn(empty_db, "SECURITY DEFINER")
    pgtap.is_definer(empty_db, "fn_x", ["text"])


def test_is_definer_fails_on_invoker_function(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError, match=r"should be security definer") as caught:
        pgtap.is_definer(empty_db, "fn_x", ["text"])
    assert diag(caught)[1:] == ["have: invoker", "want: definer"]


def test_isnt_definer_passes_on_an_invoker_function(empty_db):
    create_fn(empty_db)
    pgtap.isnt_definer(empty_db, "fn_x", ["text"])


def test_isnt_definer_fails_on_a_security_definer_function(empty_db):
    create_fn(empty_db, "SECURITY DEFINER")
    with pytest.raises(AssertionError) as caught:
        pgtap.isnt_definer(empty_db, "fn_x", ["text"])
    assert diag(caught) == [
        "Function public.fn_x(text) should not be security definer",
        "have: definer",
        "want: invoker",
    ]


def test_search_path_pinned_passes_on_a_pinned_function(empty_db):
    create_fn(empty_db, "SET search_path = pg_catalog, pg_temp")
    pgtap.search_path_pinned(empty_db, "fn_x", ["text"])
    pgtap.search_path_pinned(empty_db, "fn_x", ["text"], want='pg_catalog,"pg_temp"')


def test_search_path_pinned_fails_on_an_unpinned_function(empty_db):
    create_fn(empty_db, "SET work_mem = '64kB'")
    with pytest.raises(AssertionError) as caught:
        pgtap.search_path_pinned(empty_db, "fn_x", ["text"])
    assert diag(caught) == [
        "Function public.fn_x(text) should pin search_path to pg_catalog, pg_temp",
        "have: not set",
        "want: search_path=pg_catalog, pg_temp",
    ]


def test_search_path_pinned_fails_on_a_different_path(empty_db):
    create_fn(empty_db, "SET search_path = public, pg_temp")
    with pytest.raises(AssertionError) as caught:
        pgtap.search_path_pinned(empty_db, "fn_x", ["text"])
    assert diag(caught)[1:] == [
        "have: search_path=public, pg_temp",
        "want: search_path=pg_catalog, pg_temp",
    ]


def test_search_path_pinned_fails_when_the_path_is_one_quoted_string(empty_db):
    # SET search_path = 'a, b' names ONE schema called "a, b": not pinned at all.
    create_fn(empty_db, "SET search_path = 'pg_catalog, pg_temp'")
    with pytest.raises(AssertionError) as caught:
        pgtap.search_path_pinned(empty_db, "fn_x", ["text"])
    assert diag(caught)[1:] == [
        'have: search_path="pg_catalog, pg_temp"',
        "want: search_path=pg_catalog, pg_temp",
    ]


def test_execute_revoked_from_public_passes_after_revoke(empty_db):
    create_fn(empty_db)
    empty_db.execute("REVOKE EXECUTE ON FUNCTION public.fn_x(text) FROM PUBLIC")
    pgtap.execute_revoked_from_public(empty_db, "fn_x", ["text"])


def test_execute_revoked_from_public_fails_on_the_default_grant(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError) as caught:
        pgtap.execute_revoked_from_public(empty_db, "fn_x", ["text"])
    assert diag(caught) == [
        "Function public.fn_x(text) should not be executable by PUBLIC",
        "have: EXECUTE granted to PUBLIC",
        "want: EXECUTE revoked from PUBLIC",
    ]


def test_execute_revoked_from_public_fails_on_an_explicit_grant(empty_db):
    create_fn(empty_db)
    empty_db.execute(
        "REVOKE EXECUTE ON FUNCTION public.fn_x(text) FROM PUBLIC;"
        "GRANT EXECUTE ON FUNCTION public.fn_x(text) TO PUBLIC"
    )
    with pytest.raises(AssertionError, match="have: EXECUTE granted to PUBLIC"):
        pgtap.execute_revoked_from_public(empty_db, "fn_x", ["text"])


def test_function_privs_are_passes_on_granted_and_revoked_roles(empty_db):
    create_fn(empty_db)
    empty_db.execute(
        "REVOKE EXECUTE ON FUNCTION public.fn_x(text) FROM PUBLIC;"
        f"GRANT EXECUTE ON FUNCTION public.fn_x(text) TO {GRANTEE}"
    )
    pgtap.function_privs_are(empty_db, "fn_x", ["text"], GRANTEE, ["execute"])
    pgtap.function_privs_are(empty_db, "fn_x", ["text"], "public", [])


def test_function_privs_are_fails_on_a_missing_grant(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError) as caught:
        pgtap.function_privs_are(empty_db, "fn_x", ["text"], GRANTEE, ["EXECUTE"])
    assert diag(caught) == [
        f"Role {GRANTEE} should be granted EXECUTE on function public.fn_x(text)",
        "Missing privileges:",
        "EXECUTE",
    ]


def test_function_privs_are_fails_on_an_extra_grant_to_public(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError) as caught:
        pgtap.function_privs_are(empty_db, "fn_x", ["text"], "public", [])
    assert diag(caught) == [
        "Role public should be granted no privileges on function public.fn_x(text)",
        "Extra privileges:",
        "EXECUTE",
    ]


def test_function_privs_are_fails_on_an_unknown_role(empty_db):
    create_fn(empty_db)
    with pytest.raises(AssertionError, match=r"\n    Role no_such_role does not exist$"):
        pgtap.function_privs_are(empty_db, "fn_x", ["text"], "no_such_role", [])


def test_table_privs_are_passes_on_exact_grants(widget):
    widget.execute(f"GRANT SELECT, INSERT ON public.widget TO {GRANTEE}")
    pgtap.table_privs_are(widget, "widget", GRANTEE, ["INSERT", "select"])
    pgtap.table_privs_are(widget, "widget", "public", [])


def test_table_privs_are_fails_with_extra_and_missing_privileges(widget):
    widget.execute(f"GRANT SELECT, DELETE ON public.widget TO {GRANTEE}")
    with pytest.raises(AssertionError) as caught:
        pgtap.table_privs_are(widget, "widget", GRANTEE, ["SELECT", "INSERT"])
    assert diag(caught) == [
        f"Role {GRANTEE} should be granted SELECT, INSERT on table public.widget",
        "Extra privileges:",
        "DELETE",
        "Missing privileges:",
        "INSERT",
    ]


def test_table_privs_are_fails_on_a_grant_to_public(widget):
    widget.execute("GRANT SELECT ON public.widget_names TO PUBLIC")
    with pytest.raises(AssertionError) as caught:
        pgtap.table_privs_are(widget, "widget_names", "public", [])
    assert diag(caught)[1:] == ["Extra privileges:", "SELECT"]


# ---------------------------------------------------------------------------
# Comments
# ---------------------------------------------------------------------------


@pytest.fixture
def commented(widget: psycopg.Connection) -> psycopg.Connection:
    create_fn(widget)
    widget.execute(
        """
        COMMENT ON TABLE public.widget IS 'Things we sell.';
        COMMENT ON VIEW public.widget_names IS 'Names only.';
        COMMENT ON COLUMN public.widget.price IS 'Unit price in euros.';
        COMMENT ON FUNCTION public.fn_x(text) IS 'Always one.';
        """
    )
    return widget


def test_has_comment_passes_for_every_kind(commented):
    pgtap.has_comment(commented, "table", "widget")
    pgtap.has_comment(commented, "view", "widget_names")
    pgtap.has_comment(commented, "column", "widget.price")
    pgtap.has_comment(commented, "function", "fn_x", ["text"])


@pytest.mark.parametrize(
    ("kind", "name", "args", "first_line"),
    [
        ("table", "widget_order", None, "Table public.widget_order should have a comment"),
        ("view", "widget_prices", None, "View public.widget_prices should have a comment"),
        ("column", "widget.name", None, "Column public.widget.name should have a comment"),
        ("function", "fn_y", [], "Function public.fn_y() should have a comment"),
    ],
)
def test_has_comment_fails_on_an_uncommented_object(commented, kind, name, args, first_line):
    commented.execute(
        """
        CREATE TABLE public.widget_order (id int);
        CREATE VIEW public.widget_prices AS SELECT price FROM public.widget;
        CREATE FUNCTION public.fn_y() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;
        """
    )
    with pytest.raises(AssertionError) as caught:
        pgtap.has_comment(commented, kind, name, args)
    assert diag(caught) == [first_line, "have: no comment", "want: a comment"]


def test_has_comment_fails_on_a_missing_object(commented):
    with pytest.raises(AssertionError) as caught:
        pgtap.has_comment(commented, "view", "widget")
    assert diag(caught) == [
        "View public.widget should have a comment",
        "View public.widget does not exist",
    ]


def test_has_comment_rejects_an_unknown_kind(commented):
    with pytest.raises(ValueError, match="kind must be one of"):
        pgtap.has_comment(commented, "index", "widget_pkey")


def test_comment_is_passes_on_the_exact_comment(commented):
    pgtap.comment_is(commented, "table", "widget", "Things we sell.")
    pgtap.comment_is(commented, "column", "widget.price", "Unit price in euros.")
    pgtap.comment_is(commented, "function", "fn_x", "Always one.", args=["text"])


def test_comment_is_fails_on_a_different_comment(commented):
    with pytest.raises(AssertionError) as caught:
        pgtap.comment_is(commented, "view", "widget_names", "Names of widgets.")
    assert diag(caught) == [
        "View public.widget_names should have the expected comment",
        "have: Names only.",
        "want: Names of widgets.",
    ]


def test_comment_is_fails_on_a_missing_comment(commented):
    with pytest.raises(AssertionError) as caught:
        pgtap.comment_is(commented, "column", "widget.name", "Display name.")
    assert diag(caught)[1:] == ["have: no comment", "want: Display name."]


# ---------------------------------------------------------------------------
# throws_ok / lives_ok
# ---------------------------------------------------------------------------


def test_throws_ok_passes_and_returns_the_error(widget):
    caught = pgtap.throws_ok(
        widget,
        "INSERT INTO public.widget (widget_id, name, price) VALUES (1, 'w', -1)",
        "23514",
        "ck_widget_price_positive",
    )
    assert caught.diag.constraint_name == "ck_widget_price_positive"


def test_throws_ok_passes_with_query_parameters(widget):
    pgtap.throws_ok(
        widget,
        "INSERT INTO public.widget (widget_id, name) VALUES (%s, %s)",
        "23502",
        params=(1, None),
    )


def test_throws_ok_fails_on_a_different_sqlstate(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.throws_ok(
            widget,
            "INSERT INTO public.widget (widget_id, name, price) VALUES (1, 'w', -1)",
            "23503",
        )
    assert diag(caught) == [
        "threw 23503",
        'caught: 23514: new row for relation "widget" violates check constraint '
        '"ck_widget_price_positive"',
        "wanted: 23503",
    ]


def test_throws_ok_fails_when_nothing_is_raised(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.throws_ok(
            widget, "INSERT INTO public.widget (widget_id, name) VALUES (1, 'w')", "23514"
        )
    assert diag(caught) == ["threw 23514", "caught: no exception", "wanted: 23514"]
    assert str(caught.value).splitlines()[1] == "      caught: no exception"


def test_throws_ok_fails_on_a_different_message(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.throws_ok(
            widget,
            "INSERT INTO public.widget (widget_id, name, price) VALUES (1, 'w', -1)",
            "23514",
            "ck_widget_name_not_blank",
        )
    assert diag(caught)[0] == "threw 23514: ...ck_widget_name_not_blank..."
    assert diag(caught)[1].startswith("caught: 23514: new row for relation")
    assert diag(caught)[2] == "wanted: 23514: ...ck_widget_name_not_blank..."


def test_throws_ok_rolls_back_the_statements_effects(widget):
    pgtap.throws_ok(
        widget,
        "INSERT INTO public.widget (widget_id, name) VALUES (1, 'kept?');"
        "INSERT INTO public.widget (widget_id, name, price) VALUES (2, 'w', -1)",
        "23514",
    )
    pgtap.is_empty(widget, "SELECT * FROM public.widget")


def test_throws_ok_rolls_back_a_statement_that_did_not_throw(widget):
    with pytest.raises(AssertionError, match="caught: no exception"):
        pgtap.throws_ok(widget, "INSERT INTO public.widget VALUES (1, 'w')", "23514")
    pgtap.is_empty(widget, "SELECT * FROM public.widget")


def test_throws_ok_keeps_an_enclosing_transaction_usable(widget):
    with widget.transaction():
        widget.execute("INSERT INTO public.widget (widget_id, name) VALUES (1, 'w')")
        pgtap.throws_ok(widget, "SELECT 1 / 0", "22012")
        pgtap.results_eq(widget, "SELECT widget_id FROM public.widget", [(1,)])


def test_throws_ok_and_lives_ok_never_commit_a_non_autocommit_transaction(widget):
    widget.autocommit = False
    try:
        widget.execute("INSERT INTO public.widget (widget_id, name) VALUES (1, 'w')")
        pgtap.throws_ok(widget, "SELECT 1 / 0", "22012")
        pgtap.lives_ok(widget, "INSERT INTO public.widget (widget_id, name) VALUES (2, 'w')")
        pgtap.row_count_is(widget, "SELECT * FROM public.widget", 2)
        widget.rollback()
        pgtap.lives_ok(widget, "INSERT INTO public.widget (widget_id, name) VALUES (3, 'w')")
        widget.rollback()
        pgtap.is_empty(widget, "SELECT * FROM public.widget")
    finally:
        widget.rollback()
        widget.autocommit = True


def test_lives_ok_passes_and_keeps_the_effects(widget):
    pgtap.lives_ok(
        widget, "INSERT INTO public.widget (widget_id, name) VALUES (%s, %s)", params=(1, "w")
    )
    pgtap.results_eq(widget, "SELECT widget_id, name FROM public.widget", [(1, "w")])


def test_lives_ok_fails_on_a_failing_statement(widget):
    with pytest.raises(AssertionError) as caught:
        pgtap.lives_ok(widget, "INSERT INTO public.widget (widget_id, name) VALUES (1, NULL)")
    assert diag(caught) == [
        "Statement should run without error: "
        "INSERT INTO public.widget (widget_id, name) VALUES (1, NULL)",
        'died: 23502: null value in column "name" of relation "widget" '
        "violates not-null constraint",
    ]
    pgtap.is_empty(widget, "SELECT * FROM public.widget")


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

LETTERS = "SELECT n, chr(96 + n) FROM generate_series(1, 3) AS n"


def test_results_eq_passes_on_the_same_rows_in_order(empty_db):
    pgtap.results_eq(empty_db, LETTERS, [(1, "a"), (2, "b"), (3, "c")])
    pgtap.results_eq(empty_db, "SELECT %s::int, %s::text", [(7, "x")], params=(7, "x"))


def test_results_eq_fails_on_a_different_order(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.results_eq(empty_db, LETTERS, [(1, "a"), (3, "c"), (2, "b")])
    assert diag(caught) == [
        "Query should return the wanted rows, in order",
        "Results differ beginning at row 2:",
        "have: (2, 'b')",
        "want: (3, 'c')",
    ]


def test_results_eq_fails_on_a_missing_row(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.results_eq(empty_db, LETTERS, [(1, "a"), (2, "b"), (3, "c"), (4, "d")])
    assert diag(caught)[1:] == [
        "Results differ beginning at row 4:",
        "have: no row",
        "want: (4, 'd')",
    ]


def test_set_eq_passes_in_any_order(empty_db):
    pgtap.set_eq(empty_db, LETTERS, [(3, "c"), (1, "a"), (2, "b")])


def test_set_eq_passes_on_unhashable_values(empty_db):
    pgtap.set_eq(
        empty_db,
        "SELECT jsonb_build_object('k', n), ARRAY[n] FROM generate_series(1, 2) AS n",
        [({"k": 2}, [2]), ({"k": 1}, [1])],
    )


def test_set_eq_fails_on_extra_and_missing_records(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.set_eq(empty_db, LETTERS, [(1, "a"), (2, "b"), (4, "d")])
    assert diag(caught) == [
        "Query should return the wanted set of rows",
        "Extra records:",
        "(3, 'c')",
        "Missing records:",
        "(4, 'd')",
    ]


def test_set_eq_counts_duplicates(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.set_eq(empty_db, "SELECT 1 UNION ALL SELECT 1", [(1,)])
    assert diag(caught)[1:] == ["Extra records:", "(1,)"]


def test_set_eq_fails_on_only_missing_records(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.set_eq(empty_db, "SELECT 1 WHERE false", [(1,)])
    assert diag(caught)[1:] == ["Missing records:", "(1,)"]


def test_is_empty_passes_on_no_rows(empty_db):
    pgtap.is_empty(empty_db, "SELECT 1 WHERE false")


def test_is_empty_fails_and_lists_the_rows(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.is_empty(empty_db, LETTERS + " WHERE n > 1")
    assert diag(caught) == [
        "Query should return no rows",
        "Unexpected records:",
        "(2, 'b')",
        "(3, 'c')",
    ]


def test_row_count_is_passes_on_the_right_count(empty_db):
    pgtap.row_count_is(empty_db, LETTERS, 3)


def test_row_count_is_fails_on_a_wrong_count(empty_db):
    with pytest.raises(AssertionError) as caught:
        pgtap.row_count_is(empty_db, LETTERS, 1)
    assert diag(caught) == ["Query should return 1 row", "have: 3", "want: 1"]
