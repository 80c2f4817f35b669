"""`substrate drift`: each kind of drift, injected into a clone of a migrated database, is
reported precisely (class, object, what differs) and only it; clean databases, unrelated objects
and open gates are not drift; the command exits 0 clean, 1 drift, 2 could not check."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, _alembic_tree

from substrate import cli
from substrate.review import drift
from substrate.review import schema_snapshot as snapshot

STANDINS = Path(__file__).resolve().parent / "fixtures" / "iu_core_standins.sql"


@pytest.fixture(scope="session")
def expected_head(pg, migrated_template):
    """What a database at head must contain: the snapshot of the migrated template."""
    with pg.connect(migrated_template) as conn:
        return snapshot.collect(conn)


def drift_of(conn, want) -> tuple[list[drift.Finding], list[str]]:
    return drift.compare(snapshot.collect(conn), want)


def found(findings) -> list[tuple[str, str, str]]:
    return [(f.section, f.key, f.kind) for f in findings]


CASES = {
    "dropped index": (
        "DROP INDEX public.ix_dot_iu_command_run_run_status_created_at",
        [("indexes", "public.ix_dot_iu_command_run_run_status_created_at", "missing")],
        None,
    ),
    "edited function body": (
        "CREATE OR REPLACE FUNCTION public.fn_iu_composer_enabled() RETURNS boolean "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
        "AS $$ SELECT true $$",
        [("functions", "public.fn_iu_composer_enabled()", "changed")],
        "+ SELECT true",
    ),
    "changed function volatility": (
        "ALTER FUNCTION public.fn_iu_composer_enabled() VOLATILE",
        [("functions", "public.fn_iu_composer_enabled()", "changed")],
        "volatility: expected STABLE, found VOLATILE",
    ),
    "changed function security": (
        "ALTER FUNCTION public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)"
        " SECURITY INVOKER",
        [("functions", "public.fn_dot_iu_command_log(text, text, text, text, text, jsonb, jsonb)",
          "changed")],
        "security: expected SECURITY DEFINER, found SECURITY INVOKER",
    ),
    "changed function search_path": (
        "ALTER FUNCTION public.fn_iu_delivery_enabled() SET search_path = public",
        [("functions", "public.fn_iu_delivery_enabled()", "changed")],
        "configuration: expected search_path=pg_catalog, pg_temp, found search_path=public",
    ),
    "added column": (
        "ALTER TABLE public.dot_config ADD COLUMN note text",
        [("columns", "public.dot_config.note", "unexpected")],
        None,
    ),
    "changed column type": (
        "ALTER TABLE public.dot_config ALTER COLUMN description TYPE varchar(500)",
        [("columns", "public.dot_config.description", "changed")],
        "type: expected text, found character varying(500)",
    ),
    "dropped column default": (
        "ALTER TABLE public.dot_config ALTER COLUMN updated_at DROP DEFAULT",
        [("columns", "public.dot_config.updated_at", "changed")],
        "default: expected now(), found (none)",
    ),
    "revoked owner privilege": (
        "REVOKE SELECT ON public.dot_config FROM dot_iu_owner",
        [("privileges", "table public.dot_config to OWNER", "changed")],
        "privileges: lacks SELECT",
    ),
    "revoked package grant": (
        "REVOKE SELECT ON public.dot_iu_command_catalog FROM dot_iu_runtime",
        [("privileges", "table public.dot_iu_command_catalog to dot_iu_runtime", "missing")],
        None,
    ),
    "grant to a login": (
        "GRANT SELECT ON public.dot_iu_command_run TO pg_read_all_data",
        [("privileges", "table public.dot_iu_command_run to pg_read_all_data", "unexpected")],
        None,
    ),
    "owner changed to a login": (
        "ALTER TABLE public.dot_iu_ledger_seal OWNER TO CURRENT_USER",
        [("owners", "table public.dot_iu_ledger_seal", "changed")],
        "owner: expected dot_iu_owner, found a login",
    ),
    "unexpected grant": (
        "GRANT EXECUTE ON FUNCTION public.fn_iu_composer_enabled() TO PUBLIC",
        [("privileges", "function public.fn_iu_composer_enabled() to PUBLIC", "unexpected")],
        None,
    ),
    "dropped comment": (
        "COMMENT ON TABLE public.dot_iu_command_run IS NULL",
        [("comments", "table public.dot_iu_command_run", "missing")],
        None,
    ),
    "edited comment": (
        "COMMENT ON COLUMN public.dot_config.key IS 'Whatever.'",
        [("comments", "column public.dot_config.key", "changed")],
        "comment: expected Dotted configuration key, e.g. iu_core.composer_enabled., "
        "found Whatever.",
    ),
    "deleted config key": (
        "DELETE FROM public.dot_config WHERE key = 'queue.dlq.replay_enabled'",
        [("config", "queue.dlq.replay_enabled", "missing")],
        None,
    ),
    "edited config description": (
        "UPDATE public.dot_config SET description = 'Hand-edited.' "
        "WHERE key = 'iu_core.delivery_enabled'",
        [("config", "iu_core.delivery_enabled", "changed")],
        "description: expected Gate: IU Core route delivery., found Hand-edited.",
    ),
    "edited catalog row": (
        "UPDATE public.dot_iu_command_catalog SET description = 'Edited by hand.' "
        "WHERE command_name = 'dot_iu_healthcheck'",
        [("catalog", "dot_iu_healthcheck", "changed")],
        "description: expected Report whether IU Core collections are healthy., "
        "found Edited by hand.",
    ),
    "edited catalog row, a field the registry locks": (
        "UPDATE public.dot_iu_command_catalog SET reversible = false "
        "WHERE command_name = 'dot_iu_restore_piece'",
        [("catalog", "dot_iu_restore_piece", "changed")],
        "reversible: expected true, found false",
    ),
    "extra catalog row": (
        "INSERT INTO public.dot_iu_command_catalog (command_name, category, mutating, "
        "reversible, target_function, description) VALUES ('dot_iu_rogue', 'health', false, "
        "true, 'public.fn_iu_rogue()', 'Added by hand.')",
        [("catalog", "dot_iu_rogue", "unexpected")],
        None,
    ),
    "unexpected function of the package's naming": (
        "CREATE FUNCTION public.fn_dot_iu_backdoor() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
        [("functions", "public.fn_dot_iu_backdoor()", "unexpected")],
        "with its privileges (2)",
    ),
    "unexpected table of the package's naming": (
        "CREATE TABLE public.dot_iu_shadow (id bigint PRIMARY KEY, note text)",
        [("tables", "table public.dot_iu_shadow", "unexpected")],
        "with its columns (2), constraints (1), indexes (1), privileges (1)",
    ),
    "dropped view": (
        "DROP VIEW public.v_dot_iu_command_run_health",
        [("views", "public.v_dot_iu_command_run_health", "missing")],
        "with its columns (8), comments (1), privileges (4), owners (1)",
    ),
    "disabled trigger": (
        "ALTER TABLE public.dot_iu_command_run DISABLE TRIGGER tg_dot_iu_command_run_append_only",
        [("triggers", "public.dot_iu_command_run.tg_dot_iu_command_run_append_only", "changed")],
        "enabled: expected ENABLED, found DISABLED",
    ),
    "dropped check constraint": (
        "ALTER TABLE public.dot_iu_command_run "
        "DROP CONSTRAINT ck_dot_iu_command_run_params_digest_md5",
        [("constraints", "public.dot_iu_command_run.ck_dot_iu_command_run_params_digest_md5",
          "missing")],
        None,
    ),
    "row level security switched on": (
        "ALTER TABLE public.dot_iu_command_catalog ENABLE ROW LEVEL SECURITY",
        [("tables", "table public.dot_iu_command_catalog", "changed")],
        "row level security: expected disabled, found enabled",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_kind_of_drift_is_reported_precisely_and_only_it(db, expected_head, case):
    statement, want, detail = CASES[case]
    db.execute(statement)
    findings, _ = drift_of(db, expected_head)
    assert found(findings) == want, "\n".join(
        f"{f.kind} {f.section} {f.key}: {f.details()}" for f in findings)
    if detail:
        details = [line for f in findings for line in f.details()]
        assert any(detail in line for line in details), details


def test_a_clean_database_has_no_drift(db, expected_head):
    assert drift_of(db, expected_head) == ([], [])


def test_unrelated_objects_of_a_shared_database_are_not_drift(db, expected_head):
    db.execute("""
        CREATE TABLE public.orders (id bigint PRIMARY KEY, total numeric NOT NULL);
        CREATE INDEX ix_orders_total ON public.orders (total);
        COMMENT ON TABLE public.orders IS 'Somebody else''s table.';
        GRANT SELECT ON public.orders TO PUBLIC;
        CREATE FUNCTION public.orders_touch() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER tg_orders_touch BEFORE UPDATE ON public.orders
            FOR EACH ROW EXECUTE FUNCTION public.orders_touch();
        CREATE VIEW public.v_orders AS SELECT id FROM public.orders;
        CREATE SCHEMA reporting;
        CREATE TABLE reporting.dot_iu_command_catalog (command_name text);
        INSERT INTO public.dot_config (key, value) VALUES ('app.theme', 'dark');
    """)
    db.execute(STANDINS.read_text())  # IU Core's own fn_iu_* functions are not the package's
    assert drift_of(db, expected_head) == ([], [])


def test_config_keys_no_revision_creates_are_information_not_drift(db, expected_head):
    db.execute("INSERT INTO public.dot_config (key, value) VALUES ('iu_core.page_size', '50')")
    findings, information = drift_of(db, expected_head)
    assert findings == []
    assert information == ["config key iu_core.page_size = '50' is not created by any revision "
                           "(dot_config is shared with IU Core; not drift)"]


def test_an_open_gate_is_information_not_drift(db, expected_head):
    db.execute("SELECT fn_iu_gate_open('iu_core.composer_enabled', 'CHG-1', 'ops', 'x', 600)")
    findings, information = drift_of(db, expected_head)
    assert findings == []
    assert len(information) == 1
    assert information[0].startswith("config iu_core.composer_enabled = 'true' (the migrations "
                                     "set 'false'): gate values are operational state")


def test_several_drifts_are_each_reported_once(db, expected_head):
    for case in ("dropped index", "changed function volatility", "deleted config key"):
        db.execute(CASES[case][0])
    findings, _ = drift_of(db, expected_head)
    assert sorted(found(findings)) == sorted(
        CASES[c][1][0] for c in ("dropped index", "changed function volatility",
                                 "deleted config key"))


# -- the command, end to end (expected state built in a scratch database) -------------------

def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["drift", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def scratch_databases(pg) -> list[str]:
    rows = pg.admin.execute("SELECT datname FROM pg_database "
                            "WHERE datname LIKE 'substrate\\_drift\\_%'").fetchall()
    return [name for (name,) in rows]


def test_drift_on_a_clean_database_exits_0_and_leaves_no_scratch_database(pg, db_url, capsys):
    code, out, _ = run(capsys, "--url", db_url)
    assert code == 0, out
    assert out.rstrip().endswith("drift: none")
    assert scratch_databases(pg) == []


def test_drift_reports_injected_drift_and_exits_1_as_text_and_json(db, db_url, capsys):
    db.execute(CASES["dropped index"][0])
    db.execute(CASES["changed function security"][0])
    code, out, _ = run(capsys, "--url", db_url)
    assert code == 1
    assert "  missing    indexes     public.ix_dot_iu_command_run_run_status_created_at" in out
    assert "security: expected SECURITY DEFINER, found SECURITY INVOKER" in out
    assert out.rstrip().endswith("drift: 2 finding(s): indexes 1 missing; functions 1 changed")
    code, out, _ = run(capsys, "--url", db_url, "--json")
    report = json.loads(out)
    assert code == 1 and report["exit"] == 1 and report["drift"] is True
    assert set(report) == {"database", "revision", "head", "exit", "drift", "counts",
                           "findings", "information"}
    assert report["counts"] == {"indexes": {"missing": 1, "unexpected": 0, "changed": 0},
                                "functions": {"missing": 0, "unexpected": 0, "changed": 1}}
    security = report["findings"][1]
    assert security["class"] == "functions" and security["kind"] == "changed"
    assert security["differences"] == {"security": {"expected": "SECURITY DEFINER",
                                                    "found": "SECURITY INVOKER"}}


def test_drift_compares_a_database_with_its_own_older_revision(pg, empty_db, empty_db_url,
                                                               alembic, capsys):
    alembic(empty_db_url, "upgrade", "0003_operator_runtime")
    code, out, _ = run(capsys, "--url", empty_db_url)
    assert code == 0, out
    assert "at 0003_operator_runtime" in out
    assert out.rstrip().endswith("drift: none")
    empty_db.execute(CASES["dropped comment"][0])
    code, out, _ = run(capsys, "--url", empty_db_url, "--json")
    assert code == 1
    assert [(f["class"], f["object"], f["kind"]) for f in json.loads(out)["findings"]] == \
        CASES["dropped comment"][1]


def test_default_privileges_of_the_live_database_are_replayed_not_drift(
        pg, empty_db, empty_db_url, alembic, capsys):
    role = "drift_reporting_reader"
    pg.admin.execute(f"DROP ROLE IF EXISTS {role}")
    pg.admin.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        empty_db.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES "
                         f"TO {role}")
        empty_db.execute("ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")
        alembic(empty_db_url, "upgrade", "head")
        granted = snapshot.collect(empty_db)["privileges"]
        assert f"table public.dot_config to {role}" in granted  # the grant really is there
        code, out, _ = run(capsys, "--url", empty_db_url)
        assert code == 0, out
    finally:
        empty_db.execute(f"DROP OWNED BY {role}")
        pg.admin.execute(f"DROP ROLE {role}")


def test_drift_exits_2_without_a_database_or_an_alembic_revision(monkeypatch, capsys,
                                                                empty_db_url):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert run(capsys)[0] == 2
    code, _, err = run(capsys, "--url", "postgresql://nobody@127.0.0.1:1/nowhere")
    assert code == 2 and "cannot connect" in err
    code, _, err = run(capsys, "--url", empty_db_url)
    assert code == 2 and "no public.alembic_version" in err and "alembic stamp" in err


def test_drift_exits_2_at_a_revision_this_tree_does_not_have(db, db_url, capsys):
    db.execute("UPDATE public.alembic_version SET version_num = '9999_from_a_newer_tree'")
    code, out, err = run(capsys, "--url", db_url, "--json")
    assert code == 2 and json.loads(out)["exit"] == 2
    assert "9999_from_a_newer_tree, which this tree does not have" in err


def test_drift_exits_2_when_the_role_may_not_create_the_scratch_database(pg, db_url, capsys):
    role = "drift_no_createdb"
    pg.admin.execute(f"DROP ROLE IF EXISTS {role}")
    pg.admin.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    try:
        scratch = pg.url("postgres").replace(f"//{pg.user}", f"//{role}", 1)
        code, _, err = run(capsys, "--url", db_url, "--scratch-url", scratch)
    finally:
        pg.admin.execute(f"DROP ROLE {role}")
    assert code == 2
    assert f"role '{role}' may not create databases" in err and "CREATEDB" in err


def test_drift_drops_the_scratch_database_even_when_the_upgrade_fails(pg, db_url, tmp_path,
                                                                      capsys):
    versions = tmp_path / "versions"
    shutil.copytree(PROJECT_ROOT / "alembic" / "versions", versions,
                    ignore=shutil.ignore_patterns("__pycache__"))
    baseline = versions / "0001_baseline.py"
    baseline.write_text(baseline.read_text().replace(
        "def upgrade() -> None:\n", "def upgrade() -> None:\n    raise RuntimeError('broken')\n",
        1))
    ini = _alembic_tree(versions, tmp_path)
    code, _, err = run(capsys, "--url", db_url, "--alembic-ini", str(ini))
    assert code == 2 and "alembic upgrade" in err and "broken" in err
    assert scratch_databases(pg) == []


def test_iu_core_s_data_access_to_dot_config_is_information_not_drift(db, db_url, capsys):
    login = f"drift_iu_core_{os.getpid()}"
    db.execute(f"DROP ROLE IF EXISTS {login}")
    db.execute(f"CREATE ROLE {login} LOGIN")
    try:
        db.execute(f"GRANT SELECT, UPDATE ON dot_config TO {login}")
        code, out, _ = run(capsys, "--url", db_url, "--json")
        report = json.loads(out)
        assert code == 0, report["findings"]
        assert (f"table public.dot_config: {login} holds SELECT, UPDATE (dot_config is shared "
                "with IU Core; its guard keeps the gates safe whoever writes); not drift"
                in report["information"])
        db.execute(f"GRANT TRUNCATE ON dot_config TO {login}")
        code, out, _ = run(capsys, "--url", db_url)
        assert code == 1
        assert f"public.dot_config to {login}" in out
    finally:
        db.execute(f"DROP OWNED BY {login}")
        db.execute(f"DROP ROLE {login}")
