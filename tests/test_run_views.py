"""Registry and health views hold exact numbers after a scripted ledger (SPEC 3.2)."""

from __future__ import annotations

import pgtap
from gate_helpers import write_run

DIGEST = "0123456789abcdef0123456789abcdef"
COMMANDS = [
    ("dot_iu_healthcheck", "health", False, "public.fn_iu_collection_healthcheck()"),
    ("dot_iu_add_piece", "compose", True, "public.fn_iu_collection_add_piece(uuid, uuid, integer)"),
    ("dot_iu_route_deliver", "event", True, "public.fn_iu_route_deliver(text)"),
]
# (command, mode, status) in the order they are logged
SCRIPT = [
    ("dot_iu_healthcheck", "verify", "verified"),
    ("dot_iu_healthcheck", "plan", "planned"),
    ("dot_iu_add_piece", "plan", "planned"),
    ("dot_iu_add_piece", "apply", "applied"),
    ("dot_iu_add_piece", "apply", "refused"),
    ("dot_iu_add_piece", "apply", "applied"),
    ("dot_iu_add_piece", "verify", "failed"),
    ("dot_iu_healthcheck", "apply", "refused"),
]


def seed_catalog(conn):
    """Replace the seeded vocabulary with three known commands."""
    conn.execute("DELETE FROM dot_iu_command_catalog")
    for name, category, mutating, target in COMMANDS:
        conn.execute(
            "INSERT INTO dot_iu_command_catalog (command_name, category, mutating, reversible,"
            " target_function, description) VALUES (%s, %s, %s, true, %s, 'test command')",
            (name, category, mutating, target),
        )


def run_script(conn):
    for command, mode, status in SCRIPT:
        write_run(conn, command, mode, status, digest=DIGEST)


def test_health_view_has_exactly_one_row_on_an_empty_ledger(db):
    db.execute("DELETE FROM dot_iu_command_catalog")
    pgtap.results_eq(
        db,
        "SELECT total_runs, apply_runs, applied_runs, refused_runs, failed_runs,"
        " distinct_commands, catalog_size, last_run_at FROM v_dot_iu_command_run_health",
        [(0, 0, 0, 0, 0, 0, 0, None)],
    )


def test_registry_view_lists_catalog_rows_with_zero_runs(db):
    seed_catalog(db)
    pgtap.set_eq(
        db,
        "SELECT command_name, total_runs, applied_runs, refused_runs, failed_runs,"
        " last_run_at, last_status FROM v_dot_iu_command_registry",
        [(name, 0, 0, 0, 0, None, None) for name, *_ in COMMANDS],
    )


def test_registry_view_aggregates_the_scripted_ledger_exactly(db):
    seed_catalog(db)
    run_script(db)
    pgtap.set_eq(
        db,
        "SELECT command_name, total_runs, applied_runs, refused_runs, failed_runs, last_status"
        " FROM v_dot_iu_command_registry",
        [
            ("dot_iu_healthcheck", 3, 0, 1, 0, "refused"),
            ("dot_iu_add_piece", 5, 2, 1, 1, "failed"),
            ("dot_iu_route_deliver", 0, 0, 0, 0, None),
        ],
    )
    pgtap.is_empty(
        db,
        "SELECT r.command_name FROM v_dot_iu_command_registry r"
        " WHERE r.last_run_at IS DISTINCT FROM (SELECT max(created_at) FROM dot_iu_command_run"
        " WHERE command_name = r.command_name)",
    )


def test_last_status_breaks_created_at_ties_by_run_id(db):
    seed_catalog(db)
    with db.transaction():  # one transaction: rows may share a timestamp
        for status in ("applied", "refused", "failed"):
            write_run(db, "dot_iu_add_piece", "apply", status, digest=DIGEST)
    pgtap.results_eq(
        db, "SELECT last_status FROM v_dot_iu_command_registry"
        " WHERE command_name = 'dot_iu_add_piece'", [("failed",)])


def test_health_view_totals_the_scripted_ledger_exactly(db):
    seed_catalog(db)
    run_script(db)
    pgtap.results_eq(
        db,
        "SELECT total_runs, apply_runs, applied_runs, refused_runs, failed_runs,"
        " distinct_commands, catalog_size,"
        " last_run_at = (SELECT max(created_at) FROM dot_iu_command_run)"
        " FROM v_dot_iu_command_run_health",
        [(8, 4, 2, 2, 1, 2, 3, True)],
    )


def test_registry_reports_whether_the_target_function_resolves(db):
    seed_catalog(db)
    db.execute(
        "CREATE FUNCTION public.fn_iu_route_deliver(route_code text) RETURNS void"
        " LANGUAGE sql AS 'SELECT NULL'"
    )
    db.execute(  # same name, wrong argument types: must not count as resolved
        "CREATE FUNCTION public.fn_iu_collection_add_piece(text) RETURNS void"
        " LANGUAGE sql AS 'SELECT NULL'"
    )
    pgtap.set_eq(
        db, "SELECT command_name, target_resolves FROM v_dot_iu_command_registry",
        [("dot_iu_healthcheck", False), ("dot_iu_add_piece", False),
         ("dot_iu_route_deliver", True)],
    )
