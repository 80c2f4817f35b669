"""Revisions as deploys and DBAs run them: round trips, guards, rendered SQL, concurrency."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pgtap
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from conftest import PROJECT_ROOT, render_sql

from substrate.review import schema_snapshot as snapshot

DIGEST = "0123456789abcdef0123456789abcdef"


def chain() -> list[tuple[str, str | None]]:
    """(revision, down_revision) from base to head."""
    script = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
    revisions = list(script.walk_revisions("base", "heads"))
    return [(r.revision, r.down_revision) for r in reversed(revisions)]


def snap(pg, dbname):
    with pg.connect(dbname) as conn:
        return snapshot.take(conn)


def version(pg, dbname):
    with pg.connect(dbname) as conn:
        if not conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0]:
            return None
        row = conn.execute("SELECT string_agg(version_num, ',') FROM alembic_version").fetchone()
        return row[0]


def assert_same(have: dict, want: dict, what: str):
    for section in snapshot.SECTIONS:
        extra = sorted(set(have[section]) - set(want[section]))
        missing = sorted(set(want[section]) - set(have[section]))
        assert have[section] == want[section], (
            f"{what}: section {section} differs\n"
            f"    extra: {extra}\n    missing: {missing}"
        )


@pytest.mark.parametrize("revision,down", chain(), ids=[r for r, _ in chain()])
def test_every_revision_round_trips_to_an_identical_catalog(pg, empty_db_name, alembic,
                                                           revision, down):
    url = pg.url(empty_db_name)
    if down:
        alembic(url, "upgrade", down)
    else:  # Alembic's own version table is left behind at base, as it should be
        alembic(url, "upgrade", revision)
        alembic(url, "downgrade", "base")
    before = snap(pg, empty_db_name)
    alembic(url, "upgrade", revision)
    after = snap(pg, empty_db_name)
    assert after != before, f"{revision} changed nothing"
    alembic(url, "downgrade", down or "base")
    assert_same(snap(pg, empty_db_name), before, f"downgrade of {revision}")
    alembic(url, "upgrade", revision)
    assert_same(snap(pg, empty_db_name), after, f"re-upgrade of {revision}")


def test_head_downgrades_to_base_and_back(pg, empty_db_name, alembic):
    url = pg.url(empty_db_name)
    alembic(url, "upgrade", "head")
    head = snap(pg, empty_db_name)
    alembic(url, "downgrade", "base")
    leftovers = [line for lines in snap(pg, empty_db_name).values() for line in lines
                 if "alembic_version" not in line]
    assert leftovers == [], leftovers
    alembic(url, "upgrade", "head")
    assert_same(snap(pg, empty_db_name), head, "head after base")


def output(result) -> str:
    """What a command printed: Alembic's FAILED: line goes to stdout, NOTICEs to stderr."""
    return result.stdout + result.stderr


def test_substrate_downgrade_refuses_while_the_ledger_holds_rows(pg, db, db_url, alembic):
    db.execute("SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', 'ops', %s)",
               (DIGEST,))
    head = version(pg, db.info.dbname)
    result = alembic(db_url, "downgrade", "0002_migration_history", check=False)
    assert result.returncode != 0
    assert "refused before any step ran" in result.stdout
    assert "allow_data_loss=true" in result.stdout
    assert "Traceback" not in output(result)
    pgtap.has_table(db, "dot_iu_command_run")
    pgtap.row_count_is(db, "SELECT 1 FROM dot_iu_command_run", 1)
    assert version(pg, db.info.dbname) == head, "the rehearsal refused before the first step"


def test_the_ledger_guard_of_0003_refuses_on_its_own_step(pg, db, db_url, alembic):
    """Taken down to 0003 with the acknowledgement for the steps above, 0003 still refuses."""
    alembic(db_url, "-x", "allow_data_loss=true", "downgrade", "0003_operator_runtime")
    db.execute("INSERT INTO dot_iu_command_run (command_name, run_mode, run_status, mutating, "
               "actor, params_digest) VALUES ('dot_iu_healthcheck', 'plan', 'planned', false, "
               "'ops', %s)", (DIGEST,))
    result = alembic(db_url, "downgrade", "0002_migration_history", check=False)
    assert result.returncode != 0
    assert "refusing to drop the run ledger: it holds 1 row(s)" in result.stdout
    assert "allow_data_loss=true" in result.stdout
    assert version(pg, db.info.dbname) == "0003_operator_runtime"


def test_substrate_downgrade_proceeds_with_the_acknowledgement_and_reports_counts(
        pg, db, db_url, alembic):
    for _ in range(3):
        db.execute("SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', "
                   "'ops', %s)", (DIGEST,))
    result = alembic(db_url, "-x", "allow_data_loss=true", "downgrade", "0002_migration_history")
    assert "pre-rollback snapshot: dot_iu_command_run 3 row(s)" in result.stderr
    assert "allow_data_loss=true: dropping 3 ledger row(s)" in result.stderr
    pgtap.hasnt_table(db, "dot_iu_command_run")
    pgtap.is_empty(db, "SELECT 1 FROM dot_config WHERE key = 'iu_core.operator_runtime_enabled'")


def test_baseline_refuses_to_run_over_an_existing_dot_config(pg, empty_db, empty_db_url,
                                                            alembic):
    empty_db.execute("CREATE TABLE public.dot_config (key text PRIMARY KEY, value text NOT NULL)")
    result = alembic(empty_db_url, "upgrade", "head", check=False)
    assert result.returncode != 0
    assert "public.dot_config already exists" in result.stdout
    assert "alembic stamp 0001_baseline" in result.stdout
    assert version(pg, empty_db.info.dbname) is None
    pgtap.hasnt_table(empty_db, "dot_iu_command_run")


def test_production_database_is_adopted_with_stamp_then_upgraded(pg, empty_db, empty_db_url,
                                                                alembic):
    # A production database: the baseline objects exist, Alembic has never run there.
    alembic(empty_db_url, "upgrade", "0001_baseline")
    empty_db.execute("DROP TABLE alembic_version")
    empty_db.execute("UPDATE dot_config SET value = 'true' WHERE key = 'iu_core.composer_enabled'")
    assert alembic(empty_db_url, "upgrade", "head", check=False).returncode != 0
    alembic(empty_db_url, "stamp", "0001_baseline")
    alembic(empty_db_url, "upgrade", "head")
    pgtap.has_table(empty_db, "dot_iu_command_run")
    pgtap.results_eq(empty_db, "SELECT value FROM dot_config "
                     "WHERE key = 'iu_core.composer_enabled'", [("true",)])


def test_baseline_downgrade_refuses_to_drop_foreign_config(pg, empty_db, empty_db_url, alembic):
    alembic(empty_db_url, "upgrade", "0001_baseline")
    empty_db.execute("INSERT INTO dot_config (key, value) VALUES ('app.theme', 'dark')")
    result = alembic(empty_db_url, "downgrade", "base", check=False)
    assert result.returncode != 0
    assert "refusing to drop dot_config: 1 other key(s)" in result.stdout
    pgtap.has_table(empty_db, "dot_config")
    alembic(empty_db_url, "-x", "allow_data_loss=true", "downgrade", "base")
    pgtap.hasnt_table(empty_db, "dot_config")


def test_rendered_upgrade_equals_the_online_upgrade(pg, migrated_template, empty_db_name, psql):
    psql(empty_db_name, render_sql("upgrade", "base:head"))
    assert_same(snap(pg, empty_db_name), snap(pg, migrated_template), "offline vs online")
    assert version(pg, empty_db_name) == version(pg, migrated_template)


def test_rendered_sql_is_deterministic():
    assert render_sql("upgrade", "base:head") == render_sql("upgrade", "base:head")
    assert render_sql("downgrade", "head:base") == render_sql("downgrade", "head:base")


def test_rendered_sql_records_the_same_checksums_as_the_online_path(
        pg, migrated_template, empty_db_name, psql):
    psql(empty_db_name, render_sql("upgrade", "base:head"))
    query = "SELECT revision, direction, sql_sha256 FROM substrate_migration_history"
    with pg.connect(empty_db_name) as offline, pg.connect(migrated_template) as online:
        have = sorted(offline.execute(query).fetchall())
        want = sorted(online.execute(query).fetchall())
    assert have == want and len(have) == len(chain()) - 1  # the baseline predates the table


def test_rendered_downgrade_carries_the_ledger_guard(db, psql):
    db.execute("SELECT fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned', 'ops', %s)",
               (DIGEST,))
    script = render_sql("downgrade", "head:0002_migration_history")
    assert "refusing to drop the run ledger" in script and "NOT false" in script
    result = psql(db.info.dbname, script, check=False)
    assert result.returncode != 0
    assert "allow_data_loss=true" in result.stderr
    pgtap.has_table(db, "dot_iu_command_run")
    pgtap.row_count_is(db, "SELECT 1 FROM dot_iu_command_run", 1)
    acknowledged = render_sql("-x", "allow_data_loss=true", "downgrade",
                              "head:0002_migration_history")
    assert "NOT true" in acknowledged


def test_rendered_step_refuses_a_database_at_another_revision(pg, empty_db_name, alembic, psql):
    alembic(pg.url(empty_db_name), "upgrade", "0001_baseline")
    script = render_sql("upgrade", "0002_migration_history:0003_operator_runtime")
    result = psql(empty_db_name, script, check=False)
    assert result.returncode != 0
    assert "expects the database at revision 0002_migration_history, found 0001_baseline" \
        in result.stderr
    assert version(pg, empty_db_name) == "0001_baseline"


def test_every_step_sets_its_lock_timeout_in_rendered_sql():
    script = render_sql("-x", "lock_timeout=250ms", "upgrade", "base:head")
    steps = script.count("-- Running upgrade")
    assert steps == len(chain())
    # Each step's transaction sets it; a step that builds an index outside its transaction has
    # a second transaction, which sets it again, and sets it for the build itself.
    second = script.count("\nRESET lock_timeout;")
    assert second == 1
    assert script.count("SET LOCAL lock_timeout = '250ms';") == steps + second
    assert script.count("\nSET lock_timeout = '250ms';") == second
    assert render_sql("upgrade", "base:head").count("SET LOCAL lock_timeout = '5s';") == \
        steps + second


def test_lock_timeout_stops_a_migration_blocked_by_a_lock(pg, empty_db_name, alembic):
    url = pg.url(empty_db_name)
    alembic(url, "upgrade", "0002_migration_history")
    with pg.connect(empty_db_name, autocommit=False) as blocker:
        blocker.execute("LOCK TABLE dot_config IN ACCESS EXCLUSIVE MODE")
        result = alembic(url, "-x", "lock_timeout=200ms", "upgrade", "head", check=False)
        blocker.rollback()
    assert result.returncode != 0
    assert "lock timeout" in result.stdout and "SQLSTATE 55P03" in result.stdout
    assert "Traceback" not in output(result)
    assert version(pg, empty_db_name) == "0002_migration_history"


@pytest.mark.parametrize(
    "option,message",
    [("lock_timeout=forever", "lock_timeout"), ("allow_data_loss=maybe", "allow_data_loss"),
     ("colour=blue", "unknown -x option")],
)
def test_bad_options_are_refused_before_anything_runs(pg, empty_db_name, alembic, option,
                                                     message):
    result = alembic(pg.url(empty_db_name), "-x", option, "upgrade", "head", check=False)
    assert result.returncode != 0 and message in result.stdout
    assert result.stdout.startswith("FAILED: ") and "Traceback" not in output(result)
    assert version(pg, empty_db_name) is None


def test_concurrent_upgrades_serialize_and_apply_each_revision_once(pg, empty_db_name,
                                                                    tmp_path):
    """Two runs started while a third session holds the migration lock both poll for it (each
    says so once, holding no snapshot a concurrent index build would wait for), then take it in
    turn: every revision is applied once."""
    url = pg.url(empty_db_name)
    command = [sys.executable, "-m", "alembic", "-c", str(PROJECT_ROOT / "alembic.ini"),
               "-x", f"url={url}", "upgrade", "head"]
    logs = [tmp_path / f"run{i}.err" for i in range(2)]
    with pg.connect(empty_db_name) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('substrate.alembic'))")
        runs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w"),
                                 text=True) for log in logs]
        try:
            deadline = time.monotonic() + 60
            while not all("waiting for another migration run" in log.read_text()
                          for log in logs):
                assert time.monotonic() < deadline, "the runs never said they wait"
                assert all(run.poll() is None for run in runs), "a run did not wait"
                time.sleep(0.05)
            holder.execute("SELECT pg_advisory_unlock(hashtext('substrate.alembic'))")
            for run in runs:
                run.wait(timeout=120)
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
    results = [(None, log.read_text()) for log in logs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in results]
    with pg.connect(empty_db_name) as conn:
        pgtap.is_empty(conn, "SELECT revision FROM substrate_migration_history "
                       "GROUP BY revision, direction HAVING count(*) > 1")
        pgtap.row_count_is(conn, "SELECT 1 FROM alembic_version", 1)
    ran = sum(len(re.findall(r"Running upgrade", err)) for _, err in results)
    assert ran == len(chain())
    waited = [err.count("waiting for another migration run") for _, err in results]
    assert waited == [1, 1], waited


def test_a_rendered_script_stops_at_once_while_another_run_holds_the_lock(
        pg, empty_db_name, psql):
    with pg.connect(empty_db_name) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('substrate.alembic'))")
        result = psql(empty_db_name, render_sql("upgrade", "base:head"), check=False)
    assert result.returncode != 0
    assert "another migration run of this database is in progress" in result.stderr
    assert version(pg, empty_db_name) is None, "nothing ran"
