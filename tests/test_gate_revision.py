"""The gate-protocol revisions (SPEC 3.4; docs/gates.md): shape first, then their downgrade guards.

0005_seed_gate_commands catalogues dot_iu_gate_*; 0006_gate_protocol creates the transition
ledger and the fn_iu_gate_* functions; 0007_runtime_reader_v2 makes the runtime gate reader
honour windows. Downgrades refuse, in SQL (so rendered scripts refuse too), while a gate is open.
"""

from __future__ import annotations

import pgtap
import pytest
from conftest import PROJECT_ROOT, render_sql
from gate_helpers import GATE, RUNTIME_GATE, gate_close, gate_open, set_value

BEFORE_SEED = "0004_seed_catalog"
SEED_REVISION = "0005_seed_gate_commands"
GATE_REVISION = "0006_gate_protocol"
READER_REVISION = "0007_runtime_reader_v2"
BEFORE_GATES = SEED_REVISION

# (function, argument types, volatility, return type)
FUNCTIONS = [
    ("fn_iu_gate_open", ["text", "text", "text", "text", "integer"], "volatile", "jsonb"),
    ("fn_iu_gate_close", ["text", "text", "text"], "volatile", "jsonb"),
    ("fn_iu_gate_verify_closed", ["text"], "stable", "jsonb"),
    ("fn_iu_gate_watchdog", ["text"], "volatile", "jsonb"),
]
TRANSITION_COLUMNS = [
    ("transition_id", "bigint", True),
    ("gate_key", "text", True),
    ("action", "text", True),
    ("prev_value", "text", True),
    ("new_value", "text", True),
    ("approval_id", "text", False),
    ("ttl_seconds", "integer", False),
    ("expires_at", "timestamp with time zone", False),
    ("actor", "text", True),
    ("reason", "text", False),
    ("run_id", "bigint", True),
    ("created_at", "timestamp with time zone", True),
]
CHECKS = [
    "ck_iu_gate_transition_action",
    "ck_iu_gate_transition_actor_not_blank",
    "ck_iu_gate_transition_close_has_no_window",
    "ck_iu_gate_transition_gate_key_not_blank",
    "ck_iu_gate_transition_open_has_approval",
    "ck_iu_gate_transition_open_has_window",
    "ck_iu_gate_transition_ttl_seconds",
]
CATALOG_ROWS = [
    ("dot_iu_gate_close", "health", True, True, "public.fn_iu_gate_close(text, text, text)"),
    ("dot_iu_gate_open", "health", True, True,
     "public.fn_iu_gate_open(text, text, text, text, integer)"),
    ("dot_iu_gate_verify_closed", "read", False, True, "public.fn_iu_gate_verify_closed(text)"),
    ("dot_iu_gate_watchdog", "health", True, True, "public.fn_iu_gate_watchdog(text)"),
]


def version(conn) -> str:
    return conn.execute("SELECT string_agg(version_num, ',') FROM alembic_version").fetchone()[0]


def sql_file(name: str) -> str:
    return (PROJECT_ROOT / "sql_functions" / name).read_text()


# --- shape ------------------------------------------------------------------------------------

def test_transition_ledger_has_its_columns_key_and_comment(db):
    pgtap.has_table(db, "iu_gate_transition")
    pgtap.has_comment(db, "table", "iu_gate_transition")
    pgtap.table_privs_are(db, "iu_gate_transition", "public", [])
    pgtap.col_is_pk(db, "iu_gate_transition", "transition_id")
    for column, column_type, not_null in TRANSITION_COLUMNS:
        pgtap.col_type_is(db, "iu_gate_transition", column, column_type)
        (pgtap.col_not_null if not_null else pgtap.col_is_null)(db, "iu_gate_transition", column)
    for column in ("action", "approval_id", "expires_at", "run_id"):
        pgtap.has_comment(db, "column", f"iu_gate_transition.{column}")


@pytest.mark.parametrize("check", CHECKS)
def test_transition_ledger_check_constraints_exist(db, check):
    pgtap.has_check(db, "iu_gate_transition", check)


def test_transition_ledger_is_indexed_by_gate_and_order_and_references_the_run_ledger(db):
    """The readers find a gate's latest transition by transition_id (0011_gates_fail_closed
    replaced 0006's index by created_at, a time a writer chooses)."""
    pgtap.has_index(db, "iu_gate_transition", "ix_iu_gate_transition_gate_key_transition_id",
                    ["gate_key", "transition_id DESC"])
    pgtap.has_fk(db, "iu_gate_transition", "fk_iu_gate_transition_run_id")


def test_transition_ledger_is_append_only_like_the_run_ledger(db):
    for trigger in ("tg_iu_gate_transition_append_only", "tg_iu_gate_transition_no_truncate"):
        pgtap.trigger_is(db, "iu_gate_transition", trigger, "fn_dot_iu_append_only_guard")


def test_the_gate_classes_are_a_list_the_planner_inlines(db):
    """fn_iu_gate_classes (v2, 0016_locks_and_chains) reads nothing, so it needs neither
    SECURITY DEFINER nor a pinned search_path, and without them the planner inlines it: a
    caller scans the list itself instead of calling a function."""
    pgtap.has_function(db, "fn_iu_gate_classes", [])
    pgtap.function_returns(db, "fn_iu_gate_classes", [], "setof record")
    pgtap.volatility_is(db, "fn_iu_gate_classes", [], "stable")
    pgtap.execute_revoked_from_public(db, "fn_iu_gate_classes", [])
    pgtap.has_comment(db, "function", "fn_iu_gate_classes", [])
    definer, config, body = db.execute(
        "SELECT prosecdef, proconfig, prosrc FROM pg_proc"
        " WHERE oid = 'public.fn_iu_gate_classes()'::regprocedure").fetchone()
    assert (definer, config) == (False, None)
    assert body.strip().startswith("VALUES (") and "." not in body.replace("queue.", "").replace(
        "iu_core.", "").replace("iu_enact.", "").replace("job_substrate.", "").replace(
        "dlq.", ""), "the list names no object"
    plan = "\n".join(row[0] for row in db.execute("EXPLAIN SELECT * FROM fn_iu_gate_classes()"))
    assert "Values Scan" in plan and "Function Scan" not in plan


@pytest.mark.parametrize("name,args,volatility,returns", FUNCTIONS,
                         ids=[f[0] for f in FUNCTIONS])
def test_gate_function_is_definer_pinned_revoked_commented(db, name, args, volatility, returns):
    pgtap.has_function(db, name, args)
    pgtap.function_returns(db, name, args, returns)
    pgtap.volatility_is(db, name, args, volatility)
    pgtap.is_definer(db, name, args)
    pgtap.search_path_pinned(db, name, args)
    pgtap.execute_revoked_from_public(db, name, args)
    pgtap.has_comment(db, "function", name, args)


@pytest.mark.parametrize("name", [f[0] for f in FUNCTIONS])
def test_gate_function_comes_from_its_v1_file_and_qualifies_what_it_uses(name):
    text = sql_file(f"{name}.v1.sql")
    assert text.count("CREATE OR REPLACE FUNCTION") == 1
    assert f"CREATE OR REPLACE FUNCTION public.{name}(" in text
    for table in ("dot_config", "iu_gate_transition", "fn_iu_gate_classes",
                  "fn_dot_iu_command_log"):
        body = text.split("AS $function$", 1)[1]
        bare = [line for line in body.splitlines()
                if table in line and f"public.{table}" not in line]
        assert bare == [], f"{name}: unqualified {table}: {bare}"


def test_verify_closed_defaults_its_gate_to_null(db):
    pgtap.results_eq(db, "SELECT (fn_iu_gate_verify_closed() ->> 'all_safe')::boolean",
                     [(True,)])


def test_gate_classes_list_seven_governable_and_two_never_flip_gates(db):
    pgtap.results_eq(db, "SELECT gate_class, count(*) FROM fn_iu_gate_classes()"
                     " GROUP BY gate_class ORDER BY gate_class",
                     [("governable", 7), ("never-flip", 2)])


def test_gate_commands_are_catalogued(db):
    pgtap.set_eq(db, "SELECT command_name, category, mutating, reversible, target_function"
                 " FROM dot_iu_command_catalog WHERE command_name LIKE 'dot\\_iu\\_gate\\_%%'",
                 CATALOG_ROWS)
    pgtap.results_eq(db, "SELECT count(*) FROM v_dot_iu_command_registry"
                     " WHERE command_name LIKE 'dot\\_iu\\_gate\\_%%' AND target_resolves",
                     [(4,)])


def test_runtime_reader_is_a_stable_definer_on_the_one_gate_reading(db):
    args: list[str] = []
    pgtap.volatility_is(db, "fn_dot_iu_operator_runtime_enabled", args, "stable")
    pgtap.is_definer(db, "fn_dot_iu_operator_runtime_enabled", args)
    pgtap.search_path_pinned(db, "fn_dot_iu_operator_runtime_enabled", args)
    pgtap.execute_revoked_from_public(db, "fn_dot_iu_operator_runtime_enabled", args)
    definition = db.execute(
        "SELECT pg_get_functiondef('fn_dot_iu_operator_runtime_enabled()'::regprocedure)"
    ).fetchone()[0]
    assert "fn_iu_gate_reads_open('iu_core.operator_runtime_enabled')" in definition


# --- downgrade guards -------------------------------------------------------------------------
# Each guard is proved on its own step: the clone (nothing in it but what the test writes) is
# taken down to the reader revision first, so the guards of the later revisions, which a
# downgrade from head rehearses before any step, are not what answers.


def output(result) -> str:
    return result.stdout + result.stderr


@pytest.fixture
def at_reader_revision(db, db_url, alembic):
    alembic(db_url, "-x", "allow_data_loss=true", "downgrade", READER_REVISION)
    assert version(db) == READER_REVISION
    return db

def test_gate_downgrade_is_refused_online_while_a_gate_is_open(at_reader_revision, db, db_url,
                                                               alembic):
    gate_open(db)
    result = alembic(db_url, "-x", "allow_data_loss=true", "downgrade", BEFORE_GATES,
                     check=False)
    assert result.returncode != 0
    assert ("refusing to remove the gate protocol while governable gate(s) are open: "
            f"{GATE}") in output(result)
    pgtap.has_table(db, "iu_gate_transition")
    pgtap.results_eq(db, "SELECT value FROM dot_config WHERE key = %s", [("true",)],
                     params=(GATE,))
    assert version(db) == READER_REVISION  # rehearsed: refused before the reader step
    # The catalog still knows dot_iu_gate_close (seeded before the protocol): the gate closes,
    # then the downgrade goes through.
    gate_close(db)
    alembic(db_url, "-x", "allow_data_loss=true", "downgrade", BEFORE_GATES)
    pgtap.hasnt_table(db, "iu_gate_transition")


def test_gate_downgrade_is_refused_for_a_gate_set_true_by_hand(at_reader_revision, db, db_url,
                                                               alembic):
    set_value(db, "queue.dlq.replay_enabled", "true")
    result = alembic(db_url, "downgrade", BEFORE_GATES, check=False)
    assert result.returncode != 0
    assert "governable gate(s) are open: queue.dlq.replay_enabled" in output(result)
    pgtap.has_table(db, "iu_gate_transition")


def test_gate_downgrade_is_refused_by_the_rendered_sql_while_a_gate_is_open(
        at_reader_revision, db, db_url, alembic, psql):
    gate_open(db)

    def refused(script: str, at: str) -> None:
        assert "refusing to remove the gate protocol" in script
        result = psql(db.info.dbname, script, check=False)
        assert result.returncode != 0
        assert f"governable gate(s) are open: {GATE}" in result.stderr
        pgtap.has_table(db, "iu_gate_transition")
        pgtap.results_eq(db, "SELECT value FROM dot_config WHERE key = %s", [("true",)],
                         params=(GATE,))
        assert version(db) == at

    # The reader step and the protocol step, rehearsed together: refused before either runs.
    refused(render_sql("downgrade", f"{READER_REVISION}:{BEFORE_GATES}"), READER_REVISION)
    # The protocol step alone, with the data-loss acknowledgement, which does not lift it.
    alembic(db_url, "downgrade", GATE_REVISION)
    refused(render_sql("-x", "allow_data_loss=true", "downgrade",
                       f"{GATE_REVISION}:{BEFORE_GATES}"), GATE_REVISION)


def test_gate_downgrade_keeps_the_transition_ledger_without_the_data_loss_acknowledgement(
        at_reader_revision, db, db_url, alembic):
    gate_open(db)
    gate_close(db)
    result = alembic(db_url, "downgrade", BEFORE_GATES, check=False)
    assert result.returncode != 0
    assert "refusing to drop the gate transition ledger: it holds 2 row(s)" in output(result)
    pgtap.row_count_is(db, "SELECT 1 FROM iu_gate_transition", 2)


def test_gate_downgrade_is_allowed_once_the_gate_is_closed(at_reader_revision, db, db_url,
                                                           alembic):
    gate_open(db)
    gate_close(db)
    result = alembic(db_url, "-x", "allow_data_loss=true", "downgrade", BEFORE_GATES)
    assert "pre-rollback snapshot: iu_gate_transition 2 row(s), open governable gate(s): none" \
        in result.stderr
    pgtap.hasnt_table(db, "iu_gate_transition")
    pgtap.hasnt_function(db, "fn_iu_gate_open")
    assert version(db) == BEFORE_GATES
    alembic(db_url, "downgrade", BEFORE_SEED)
    pgtap.is_empty(db, "SELECT 1 FROM dot_iu_command_catalog"
                   " WHERE command_name LIKE 'dot\\_iu\\_gate\\_%%'")


def test_gate_downgrade_by_rendered_sql_is_allowed_once_closed(db, psql):
    gate_open(db)
    gate_close(db)
    psql(db.info.dbname, render_sql("-x", "allow_data_loss=true", "downgrade",
                                    f"{version(db)}:{BEFORE_GATES}"))
    pgtap.hasnt_table(db, "iu_gate_transition")
    assert version(db) == BEFORE_GATES


def test_runtime_reader_downgrade_is_refused_while_the_runtime_gate_reads_true(
        at_reader_revision, db, db_url, alembic, psql):
    gate_open(db, RUNTIME_GATE, ttl=1)
    result = alembic(db_url, "downgrade", GATE_REVISION, check=False)
    assert result.returncode != 0
    assert "refusing to restore the v1 runtime gate reader" in output(result)
    script = render_sql("downgrade", f"{READER_REVISION}:{GATE_REVISION}")
    assert "refusing to restore the v1 runtime gate reader" in script
    assert psql(db.info.dbname, script, check=False).returncode != 0
    assert version(db) == READER_REVISION
    gate_close(db, RUNTIME_GATE)
    alembic(db_url, "downgrade", GATE_REVISION)
    assert version(db) == GATE_REVISION


def test_runtime_reader_downgrade_restores_v1_which_reads_the_value_alone(db, db_url, alembic):
    head = version(db)
    alembic(db_url, "-x", "allow_data_loss=true", "downgrade", GATE_REVISION)
    assert version(db) == GATE_REVISION
    set_value(db, RUNTIME_GATE, "true")  # no window on record: v1 reads it, v2 would not
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(True,)])
    pgtap.comment_is(db, "function", "fn_dot_iu_operator_runtime_enabled",
                     "Fail-closed reader of gate iu_core.operator_runtime_enabled: true only for "
                     "the exact value 'true'.", args=[])
    set_value(db, RUNTIME_GATE, "false")
    alembic(db_url, "upgrade", head)
    set_value(db, RUNTIME_GATE, "true")
    pgtap.results_eq(db, "SELECT fn_dot_iu_operator_runtime_enabled()", [(False,)])
    set_value(db, RUNTIME_GATE, "false")


def test_runtime_reader_upgrade_warns_about_a_windowless_true_value(pg, empty_db_name, alembic):
    url = pg.url(empty_db_name)
    alembic(url, "upgrade", GATE_REVISION)
    with pg.connect(empty_db_name) as conn:
        set_value(conn, RUNTIME_GATE, "true")
        result = alembic(url, "upgrade", READER_REVISION)
        assert ("iu_core.operator_runtime_enabled is 'true' with no live window: it reads as "
                "false from now on") in result.stderr
        pgtap.results_eq(conn, "SELECT fn_dot_iu_operator_runtime_enabled()", [(False,)])


def test_gate_upgrade_warns_about_gates_already_open_by_hand(pg, empty_db_name, alembic):
    url = pg.url(empty_db_name)
    alembic(url, "upgrade", BEFORE_GATES)
    with pg.connect(empty_db_name) as conn:
        set_value(conn, GATE, "true")
        result = alembic(url, "upgrade", GATE_REVISION)
        assert f"gate(s) open with no window on record: {GATE}" in result.stderr
        pgtap.results_eq(conn, "SELECT value FROM dot_config WHERE key = %s", [("true",)],
                         params=(GATE,))
