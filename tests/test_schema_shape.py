"""Shape before behaviour: every object of SPEC 3.1-3.2 as the migrations leave it at head."""

from __future__ import annotations

import pgtap
import pytest

LOG_ARGS = ["text", "text", "text", "text", "text", "jsonb", "jsonb"]
READERS = (
    "fn_iu_composer_enabled",
    "fn_iu_structure_ops_enabled",
    "fn_iu_delivery_enabled",
    "fn_iu_three_axis_auto_refresh_enabled",
    "fn_iu_vector_sync_enabled",
    "fn_dot_iu_operator_runtime_enabled",
)
# (function, argument types, volatility)
FUNCTIONS = [(reader, [], "stable") for reader in READERS] + [
    ("fn_dot_iu_command_log", LOG_ARGS, "volatile"),
]
DOT_CONFIG_COLUMNS = [
    ("key", "text", True),
    ("value", "text", True),
    ("description", "text", False),
    ("updated_at", "timestamp with time zone", True),
]
CATALOG_COLUMNS = [
    ("command_name", "text", True),
    ("category", "text", True),
    ("mutating", "boolean", True),
    ("reversible", "boolean", True),
    ("target_function", "text", True),
    ("inverse_command", "text", False),
    ("description", "text", True),
    ("created_at", "timestamp with time zone", True),
]
RUN_COLUMNS = [
    ("run_id", "bigint", True),
    ("command_name", "text", True),
    ("run_mode", "text", True),
    ("run_status", "text", True),
    ("mutating", "boolean", True),
    ("actor", "text", True),
    ("params_digest", "text", True),
    ("gate_snapshot", "jsonb", True),
    ("evidence", "jsonb", True),
    ("created_at", "timestamp with time zone", True),
]


@pytest.mark.parametrize("table", ["dot_config", "dot_iu_command_catalog", "dot_iu_command_run"])
def test_table_exists_with_comment_and_no_public_privileges(db, table):
    pgtap.has_table(db, table)
    pgtap.has_comment(db, "table", table)
    pgtap.table_privs_are(db, table, "public", [])


@pytest.mark.parametrize(
    "table,columns",
    [("dot_config", DOT_CONFIG_COLUMNS), ("dot_iu_command_catalog", CATALOG_COLUMNS),
     ("dot_iu_command_run", RUN_COLUMNS)],
)
def test_columns_have_their_types_and_nullability(db, table, columns):
    for column, column_type, not_null in columns:
        pgtap.col_type_is(db, table, column, column_type)
        if not_null:
            pgtap.col_not_null(db, table, column)
        else:
            pgtap.col_is_null(db, table, column)


@pytest.mark.parametrize(
    "table,pk",
    [("dot_config", "key"), ("dot_iu_command_catalog", "command_name"),
     ("dot_iu_command_run", "run_id")],
)
def test_primary_keys(db, table, pk):
    pgtap.col_is_pk(db, table, pk)


@pytest.mark.parametrize(
    "table,check",
    [
        ("dot_iu_command_catalog", "ck_dot_iu_command_catalog_command_name"),
        ("dot_iu_command_catalog", "ck_dot_iu_command_catalog_category"),
        ("dot_iu_command_catalog", "ck_dot_iu_command_catalog_target_function"),
        ("dot_iu_command_catalog", "ck_dot_iu_command_catalog_description"),
        ("dot_iu_command_run", "ck_dot_iu_command_run_run_mode"),
        ("dot_iu_command_run", "ck_dot_iu_command_run_run_status"),
        ("dot_iu_command_run", "ck_dot_iu_command_run_status_matches_mode"),
        ("dot_iu_command_run", "ck_dot_iu_command_run_actor_not_blank"),
        ("dot_iu_command_run", "ck_dot_iu_command_run_params_digest_md5"),
        ("dot_iu_command_run", "ck_dot_iu_command_run_command_name"),
    ],
)
def test_check_constraints_exist(db, table, check):
    pgtap.has_check(db, table, check)


def test_catalog_inverse_command_references_the_catalog(db):
    pgtap.has_fk(db, "dot_iu_command_catalog", "fk_dot_iu_command_catalog_inverse_command")


def test_ledger_indexes_cover_command_and_status_by_recency(db):
    pgtap.has_index(db, "dot_iu_command_run", "ix_dot_iu_command_run_command_name_created_at",
                    ["command_name", "created_at DESC"])
    pgtap.has_index(db, "dot_iu_command_run", "ix_dot_iu_command_run_run_status_created_at",
                    ["run_status", "created_at DESC"])


def test_ledger_append_only_triggers_exist(db):
    pgtap.trigger_is(db, "dot_iu_command_run", "tg_dot_iu_command_run_append_only",
                     "fn_dot_iu_append_only_guard")
    pgtap.trigger_is(db, "dot_iu_command_run", "tg_dot_iu_command_run_no_truncate",
                     "fn_dot_iu_append_only_guard")


@pytest.mark.parametrize("name,args,volatility", FUNCTIONS)
def test_function_is_definer_pinned_revoked_and_commented(db, name, args, volatility):
    pgtap.has_function(db, name, args)
    pgtap.volatility_is(db, name, args, volatility)
    pgtap.is_definer(db, name, args)
    pgtap.search_path_pinned(db, name, args)
    pgtap.execute_revoked_from_public(db, name, args)
    pgtap.has_comment(db, "function", name, args)


@pytest.mark.parametrize("name", READERS)
def test_readers_return_boolean(db, name):
    pgtap.function_returns(db, name, [], "boolean")


def test_logger_returns_the_new_run_id_as_bigint(db):
    pgtap.function_returns(db, "fn_dot_iu_command_log", LOG_ARGS, "bigint")


def test_trigger_function_pins_search_path_and_is_revoked(db):
    pgtap.search_path_pinned(db, "fn_dot_iu_append_only_guard", [])
    pgtap.execute_revoked_from_public(db, "fn_dot_iu_append_only_guard", [])
    pgtap.has_comment(db, "function", "fn_dot_iu_append_only_guard", [])


@pytest.mark.parametrize("view", ["v_dot_iu_command_registry", "v_dot_iu_command_run_health"])
def test_views_exist_with_comment(db, view):
    pgtap.has_view(db, view)
    pgtap.has_comment(db, "view", view)
    pgtap.table_privs_are(db, view, "public", [])


def test_registry_view_columns(db):
    pgtap.results_eq(
        db,
        "SELECT attname::text FROM pg_attribute"
        " WHERE attrelid = 'v_dot_iu_command_registry'::regclass AND attnum > 0 ORDER BY attnum",
        [(c,) for c in (
            "command_name", "category", "mutating", "reversible", "target_function",
            "inverse_command", "description", "target_resolves", "total_runs", "applied_runs",
            "refused_runs", "failed_runs", "last_run_at", "last_status")],
    )


def test_health_view_columns(db):
    pgtap.results_eq(
        db,
        "SELECT attname::text FROM pg_attribute"
        " WHERE attrelid = 'v_dot_iu_command_run_health'::regclass AND attnum > 0 ORDER BY attnum",
        [(c,) for c in (
            "total_runs", "apply_runs", "applied_runs", "refused_runs", "failed_runs",
            "distinct_commands", "catalog_size", "last_run_at")],
    )


def test_gate_keys_exist_at_safe_default(db):
    pgtap.set_eq(
        db,
        "SELECT key, value FROM dot_config",
        [(key, "false") for key in (
            "iu_core.composer_enabled", "iu_core.structure_ops_enabled",
            "iu_core.delivery_enabled", "iu_core.three_axis_auto_refresh_enabled",
            "queue.job_substrate.enabled", "queue.dlq.replay_enabled",
            "iu_enact.allow_no_review_decision", "iu_core.vector_sync_enabled",
            "iu_core.operator_runtime_enabled")],
    )
