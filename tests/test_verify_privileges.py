"""``substrate verify``'s privileges section (docs/roles.md): the package's own grants are never a
finding; any drift from the matrix is, with the statement that repairs it, and running those
statements brings the database back to a clean report.

Roles are cluster-wide, so every login made here has a name unique to the test, and the one test
that alters a package role puts it back before it ends.
"""

from __future__ import annotations

import os
import re

import psycopg
import pytest

from substrate.review.verify import privileges

REPAIR = re.compile(r"\(repair: (.+)\)$")


def check(conn) -> dict:
    return privileges.section(conn)


def repair_all(conn, findings: list[str]) -> None:
    for finding in findings:
        conn.execute(REPAIR.search(finding).group(1))


@pytest.fixture
def login(db):
    name = f"verify_login_{os.getpid()}"
    db.execute(f"DROP ROLE IF EXISTS {name}")
    db.execute(f"CREATE ROLE {name} LOGIN")
    yield name
    db.execute(f"DROP OWNED BY {name}")
    db.execute(f"DROP ROLE {name}")


def test_a_database_at_head_is_as_the_matrix_says(db):
    report = check(db)
    assert report["ok"], report["findings"]
    assert report["summary"].endswith(": as the matrix says")
    assert report["lines"] == ["members: no role is a member of a package role"]


def test_members_are_reported_not_judged(db, login):
    db.execute(f"GRANT dot_iu_runtime TO {login}")
    report = check(db)
    assert report["ok"]
    assert report["members"] == {"dot_iu_runtime": [login]}


@pytest.mark.parametrize(("statement", "finding"), [
    ("GRANT SELECT ON dot_iu_command_run TO PUBLIC",
     "table public.dot_iu_command_run: PUBLIC holds SELECT, which the matrix does not give "
     "(repair: REVOKE SELECT ON TABLE public.dot_iu_command_run FROM PUBLIC)"),
    ("GRANT INSERT ON dot_iu_command_run TO dot_iu_runtime",
     "table public.dot_iu_command_run: dot_iu_runtime holds INSERT, which the matrix does not give"
     " (repair: REVOKE INSERT ON TABLE public.dot_iu_command_run FROM dot_iu_runtime)"),
    ("GRANT EXECUTE ON FUNCTION fn_dot_iu_ledger_retire(timestamptz, text, text) TO PUBLIC",
     "function public.fn_dot_iu_ledger_retire(timestamp with time zone, text, text): PUBLIC holds "
     "EXECUTE, which the matrix does not give (repair: REVOKE EXECUTE ON FUNCTION "
     "public.fn_dot_iu_ledger_retire(timestamp with time zone, text, text) FROM PUBLIC)"),
    ("REVOKE SELECT ON v_dot_iu_gates FROM dot_iu_auditor",
     "view public.v_dot_iu_gates: dot_iu_auditor lacks SELECT (repair: GRANT SELECT ON TABLE "
     "public.v_dot_iu_gates TO dot_iu_auditor)"),
    ("ALTER TABLE dot_config OWNER TO postgres",
     "table public.dot_config is owned by postgres, not dot_iu_owner (repair: ALTER TABLE "
     "public.dot_config OWNER TO dot_iu_owner)"),
    ("ALTER VIEW v_dot_iu_gates OWNER TO postgres",
     "view public.v_dot_iu_gates is owned by postgres, not dot_iu_owner (repair: ALTER VIEW "
     "public.v_dot_iu_gates OWNER TO dot_iu_owner)"),
    ("ALTER TABLE dot_config DISABLE TRIGGER tg_dot_config_gate_guard",
     "trigger tg_dot_config_gate_guard on public.dot_config is DISABLED, the migrations leave it"
     " ENABLE ALWAYS (repair: ALTER TABLE public.dot_config ENABLE ALWAYS TRIGGER "
     "tg_dot_config_gate_guard)"),
    ("ALTER TABLE dot_config ENABLE TRIGGER tg_dot_config_gate_guard",
     "trigger tg_dot_config_gate_guard on public.dot_config is ENABLED, the migrations leave it"
     " ENABLE ALWAYS (repair: ALTER TABLE public.dot_config ENABLE ALWAYS TRIGGER "
     "tg_dot_config_gate_guard)"),
])
def test_drift_is_a_finding_with_a_repair_that_works(db, statement, finding):
    db.execute(statement)
    report = check(db)
    assert not report["ok"]
    assert finding in report["findings"], report["findings"]
    repair_all(db, report["findings"])
    report = check(db)
    assert report["ok"], report["findings"]


def test_a_grant_to_a_login_is_a_finding(db, login):
    db.execute(f"GRANT INSERT, UPDATE ON dot_iu_command_catalog TO {login}")
    (finding,) = check(db)["findings"]
    assert finding == (f"table public.dot_iu_command_catalog: {login} holds INSERT, UPDATE, which "
                       f"the matrix does not give (repair: REVOKE INSERT, UPDATE ON TABLE "
                       f"public.dot_iu_command_catalog FROM {login})")
    repair_all(db, [finding])
    assert check(db)["ok"]


def test_a_stored_dot_iu_setting_is_a_finding(db, login):
    name = db.execute("SELECT current_database()").fetchone()[0]
    db.execute(f'ALTER DATABASE "{name}" SET dot_iu.ledger_maintenance = \'on\'')
    db.execute(f'ALTER ROLE {login} IN DATABASE "{name}" SET dot_iu.ledger_maintenance = \'1\'')
    try:
        findings = check(db)["findings"]
        assert findings == [
            f"dot_iu.ledger_maintenance=on is stored for database {name}: the package's "
            f"switches are set per transaction only (repair: ALTER DATABASE {name} RESET "
            "dot_iu.ledger_maintenance)",
            f"dot_iu.ledger_maintenance=1 is stored for role {login} in database {name}: the "
            f"package's switches are set per transaction only (repair: ALTER ROLE {login} IN "
            f"DATABASE {name} RESET dot_iu.ledger_maintenance)",
        ]
        repair_all(db, findings)
        assert check(db)["ok"]
    finally:
        db.execute(f'ALTER DATABASE "{name}" RESET ALL')


def test_a_package_role_that_can_log_in_is_a_finding(db):
    db.execute("ALTER ROLE dot_iu_auditor LOGIN CREATEDB")
    try:
        findings = check(db)["findings"]
        assert findings == [
            "role dot_iu_auditor has LOGIN, CREATEDB; a package role is a NOLOGIN group role "
            "(repair: ALTER ROLE dot_iu_auditor NOLOGIN NOCREATEDB)"]
        repair_all(db, findings)
        assert check(db)["ok"]
    finally:
        db.execute("ALTER ROLE dot_iu_auditor NOLOGIN NOCREATEDB")


def test_before_least_privilege_the_section_is_not_installed(alembic, empty_db, empty_db_url):
    alembic(empty_db_url, "upgrade", "0009_tally_watermark")
    report = check(empty_db)
    assert report == {"ok": True, "strict_ok": True, "findings": [],
                      "summary": "not installed (a revision before 0010_least_privilege)"}


def test_verify_cli_exits_1_on_a_privilege_finding(capsys, db, db_url):
    from substrate import cli

    db.execute("GRANT SELECT ON dot_config TO PUBLIC")
    assert cli.main(["verify", "--url", db_url]) == 1
    out = capsys.readouterr().out
    assert "privileges: " in out
    assert "REVOKE SELECT ON TABLE public.dot_config FROM PUBLIC" in out


def test_iu_core_s_own_access_to_the_shared_dot_config_is_information(db, login):
    db.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON dot_config TO {login}")
    db.execute(f"GRANT UPDATE (value) ON dot_config TO {login}")
    report = check(db)
    assert report["ok"], report["findings"]
    assert report["shared"] == [
        f"column public.dot_config.value: {login} holds UPDATE (dot_config is shared with IU "
        "Core; its guard keeps the gates safe whoever writes)",
        f"table public.dot_config: {login} holds DELETE, INSERT, SELECT, UPDATE (dot_config is "
        "shared with IU Core; its guard keeps the gates safe whoever writes)"]
    # What the grant allows cannot open a gate: the guard refuses it whoever writes.
    with db.transaction():
        db.execute(f"SET LOCAL ROLE {login}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute("UPDATE dot_config SET value = 'true' WHERE key = "
                       "'iu_core.composer_enabled'")


@pytest.mark.parametrize("statement", [
    "GRANT SELECT ON dot_config TO PUBLIC",
    "GRANT TRUNCATE ON dot_config TO {login}",
    "GRANT TRIGGER ON dot_config TO {login}",
    "GRANT SELECT ON dot_iu_command_run TO {login}",
])
def test_other_access_to_package_objects_stays_a_finding(db, login, statement):
    db.execute(statement.format(login=login))
    report = check(db)
    assert not report["ok"]
    assert report["shared"] == []


@pytest.mark.parametrize(("statement", "finding"), [
    ("GRANT USAGE, UPDATE ON SEQUENCE iu_gate_transition_transition_id_seq TO {login}",
     "sequence public.iu_gate_transition_transition_id_seq: {login} holds UPDATE, USAGE (a "
     "package table's identity: whoever may setval it can block the table's writers) (repair: "
     "REVOKE ALL ON SEQUENCE public.iu_gate_transition_transition_id_seq FROM {login})"),
    ("GRANT dot_iu_owner TO dot_iu_runtime",
     "role dot_iu_runtime is a member of dot_iu_owner: a package role holds its own rights only "
     "(repair: REVOKE dot_iu_owner FROM dot_iu_runtime)"),
    ("GRANT pg_write_all_data TO {login}",
     "role {login} is a member of pg_write_all_data: it writes every package table directly, "
     "past the logger's and the gate protocol's rules (repair: REVOKE pg_write_all_data FROM "
     "{login})"),
])
def test_paths_around_the_matrix_are_findings_with_repairs_that_work(db, login, statement,
                                                                      finding):
    """Roles are cluster-wide: each statement here is undone by its own repair, or by the
    login's DROP OWNED / DROP ROLE, before the test ends."""
    db.execute(statement.format(login=login))
    try:
        findings = check(db)["findings"]
        assert finding.format(login=login) in findings, findings
        repair_all(db, findings)
        assert check(db)["ok"]
    finally:
        db.execute("REVOKE dot_iu_owner FROM dot_iu_runtime")


def test_a_member_of_pg_write_all_data_without_inherit_is_still_a_finding(db, login):
    """WITH INHERIT FALSE (PostgreSQL 16+) still lets the login SET ROLE pg_write_all_data."""
    if db.info.server_version < 160000:
        pytest.skip("GRANT ... WITH INHERIT is PostgreSQL 16+")
    db.execute(f"GRANT pg_write_all_data TO {login} WITH INHERIT FALSE")
    findings = check(db)["findings"]
    assert any(f.startswith(f"role {login} is a member of pg_write_all_data") for f in findings)
    repair_all(db, findings)
    assert check(db)["ok"]
