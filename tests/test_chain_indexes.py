"""The chain indexes of 0021_chain_indexes, and how a revision builds an index on a big table
(docs/migrations.md, "An index on a big table"; revision_helpers_v2).

The indexes: both partial and valid at head, owned by the owner role, and used by the chain
queries of docs/runtime.md. The build: CREATE INDEX CONCURRENTLY outside the step's transaction,
so a writer of the ledger is never stopped by it (a write goes through while the build waits
for an older writer); a build that fails leaves the database at 0020 with an INVALID index,
which `substrate drift` reports and the next `alembic upgrade` replaces; the rendered SQL runs
the build between the step's two transactions; a caller's own transaction gets the plain
CREATE INDEX, in it. The downgrade is strict: a plain DROP INDEX in its step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid

import pgtap
import pytest
from alembic.config import Config
from alembic.util import CommandError
from conftest import PROJECT_ROOT, render_sql
from sqlalchemy import create_engine, pool

from alembic import command
from substrate import cli

PREVIOUS = "0020_plan_chain_correlation"
REVISION = "0021_chain_indexes"
INI = str(PROJECT_ROOT / "alembic.ini")
DIGEST = "0123456789abcdef0123456789abcdef"
INDEXES = {
    "ix_dot_iu_command_run_correlation_id": ("correlation_id", "(correlation_id IS NOT NULL)"),
    "ix_dot_iu_command_run_plan_run_id": ("plan_run_id", "(plan_run_id IS NOT NULL)"),
}
STATE = """
SELECT c.relname, x.indisvalid, pg_get_expr(x.indpred, x.indrelid),
       pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class') IS NOT NULL
  FROM pg_index AS x JOIN pg_class AS c ON c.oid = x.indexrelid
 WHERE x.indrelid = 'public.dot_iu_command_run'::regclass
   AND c.relname IN ('ix_dot_iu_command_run_correlation_id', 'ix_dot_iu_command_run_plan_run_id')
 ORDER BY c.relname
"""
WANT = [(name, True, predicate, "dot_iu_owner", True)
        for name, (_column, predicate) in sorted(INDEXES.items())]


def version(conn) -> str:
    return conn.execute("SELECT string_agg(version_num, ',') FROM alembic_version").fetchone()[0]


def log(conn, correlation: str, status: str = "verified") -> int:
    """One ledger row of dot_iu_healthcheck carrying ``correlation``, through the logger."""
    evidence = json.dumps({"correlation_id": correlation})
    return conn.execute(
        "SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'verify', %s, 'chain-test',"
        " %s, %s::jsonb)", (status, DIGEST, evidence)).fetchone()[0]


def upgrade_in_background(url: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "alembic", "-c", INI, "-x", f"url={url}", *options, "upgrade",
         "head"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)


def wait_for_build_waiting(conn, timeout: float = 30.0) -> None:
    """Until a CREATE INDEX CONCURRENTLY of this database waits on a lock (an older writer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'"
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("no CREATE INDEX CONCURRENTLY came to wait for the open writer")


@pytest.fixture
def at_previous(db, db_url, alembic):
    """The clone of head, downgraded to 0020 (the indexes dropped concurrently)."""
    alembic(db_url, "downgrade", PREVIOUS)
    assert version(db) == PREVIOUS
    assert db.execute(STATE).fetchall() == []
    return db


def test_head_has_both_partial_indexes_valid_owned_by_the_owner_role_with_comments(db):
    for name, (column, _predicate) in INDEXES.items():
        pgtap.has_index(db, "dot_iu_command_run", name, [column])
    assert db.execute(STATE).fetchall() == WANT


CHAIN = """
SELECT run_id FROM public.dot_iu_command_run WHERE correlation_id = %(k)s
UNION
SELECT r.run_id FROM public.dot_iu_command_run AS r
  JOIN public.dot_iu_command_run AS p ON p.run_id = r.plan_run_id
 WHERE p.correlation_id = %(k)s AND p.run_mode = 'plan'
ORDER BY run_id
"""


def test_the_chain_query_of_the_runtime_docs_uses_the_indexes(db):
    """On a ledger of 20,000 other rows the planner reads the chain through both indexes."""
    correlation = str(uuid.uuid4())
    plan = db.execute(
        "SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'plan', 'planned',"
        " 'chain-test', %s, %s::jsonb)",
        (DIGEST, json.dumps({"correlation_id": correlation}))).fetchone()[0]
    db.execute(
        "INSERT INTO public.dot_iu_command_run (command_name, run_mode, run_status, mutating,"
        " actor, params_digest, correlation_id, plan_run_id)"
        " SELECT 'dot_iu_healthcheck', 'verify', 'verified', false, 'chain-test', %s,"
        " CASE WHEN i %% 2 = 0 THEN gen_random_uuid() END, CASE WHEN i %% 3 = 0 THEN i END"
        " FROM generate_series(1, 20000) AS i", (DIGEST,))
    refused = db.execute(
        "SELECT public.fn_dot_iu_command_log('dot_iu_healthcheck', 'apply', 'refused',"
        " 'chain-test', %s, %s::jsonb)", (DIGEST, json.dumps({"plan_run_id": plan}))).fetchone()[0]
    db.execute("ANALYZE public.dot_iu_command_run")
    explained = "\n".join(row[0] for row in db.execute(
        "EXPLAIN " + CHAIN.replace("%(k)s", f"'{correlation}'")).fetchall())
    assert "Seq Scan" not in explained, explained
    for name in INDEXES:
        assert name in explained, explained
    # The refused apply named the plan: it joined the chain (logger v9), and a row written
    # before that carried only plan_run_id, which the second half of the query follows.
    assert [r[0] for r in db.execute(CHAIN, {"k": correlation}).fetchall()] == [plan, refused]


def test_the_build_never_stops_a_writer_of_the_ledger(pg, at_previous, db_name, db_url):
    """The build waits for a writer that was already writing; meanwhile another writer's row
    goes through at once; when the first commits, the build ends and indexes both rows."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with pg.connect(db_name, autocommit=False) as older, pg.connect(db_name) as writer:
        log(older, first)  # a writer in flight: its transaction stays open
        run = upgrade_in_background(db_url, "-x", "lock_timeout=60s")
        try:
            wait_for_build_waiting(writer)
            writer.execute("SET lock_timeout = '2s'")
            started = time.monotonic()
            log(writer, second)  # no wait: CREATE INDEX CONCURRENTLY holds no lock it needs
            assert time.monotonic() - started < 2
            assert run.poll() is None, "the build went on waiting for the older writer"
            older.commit()
            out, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 0, out + err
    assert version(at_previous) == REVISION
    assert at_previous.execute(STATE).fetchall() == WANT
    with at_previous.transaction():
        at_previous.execute("SET LOCAL enable_seqscan = off")
        found = at_previous.execute(
            "SELECT count(*) FROM public.dot_iu_command_run WHERE correlation_id IN (%s, %s)",
            (first, second)).fetchone()[0]
    assert found == 2


def test_a_failed_build_leaves_0020_an_invalid_index_drift_reports_and_the_next_run_replaces(
        pg, at_previous, db_name, db_url, alembic, capsys):
    recorded = "SELECT count(*) FROM substrate_migration_history WHERE revision = %s"
    before = at_previous.execute(recorded, (REVISION,)).fetchone()[0]
    with pg.connect(db_name, autocommit=False) as older:
        log(older, str(uuid.uuid4()))
        result = alembic(db_url, "-x", "lock_timeout=300ms", "upgrade", "head", check=False)
        older.rollback()
    assert result.returncode != 0
    assert "FAILED:" in result.stdout and "SQLSTATE 55P03" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert version(at_previous) == PREVIOUS
    left = at_previous.execute(STATE).fetchall()
    assert [(name, valid) for name, valid, *_ in left] == \
        [("ix_dot_iu_command_run_correlation_id", False)]
    assert at_previous.execute(recorded, (REVISION,)).fetchone()[0] == before, "not recorded"
    # At 0020 the leftover is drift: an index the revision does not have.
    status = cli.main(["drift", "--url", db_url])
    out = capsys.readouterr().out
    assert status == 1
    assert "unexpected indexes     public.ix_dot_iu_command_run_correlation_id" in out, out
    alembic(db_url, "upgrade", "head")
    assert version(at_previous) == REVISION
    assert at_previous.execute(STATE).fetchall() == WANT
    assert cli.main(["drift", "--url", db_url]) == 0


def test_the_rendered_step_builds_between_its_two_transactions_and_runs_with_psql(
        at_previous, db_name, psql):
    script = render_sql("upgrade", f"{PREVIOUS}:{REVISION}")
    step = script[script.index(f"-- Running upgrade {PREVIOUS}"):]
    lines = [line for line in step.splitlines() if line.strip()]
    commit, begin = lines.index("COMMIT;"), lines.index("BEGIN;")
    outside = lines[commit + 1:begin]
    assert [line for line in outside if line.startswith("CREATE INDEX CONCURRENTLY")] == [
        f"CREATE INDEX CONCURRENTLY {name} ON public.dot_iu_command_run ({column})"
        f" WHERE {column} IS NOT NULL;" for name, (column, _p) in INDEXES.items()]
    assert outside[0] == "SET lock_timeout = '5s';" and outside[-1] == "RESET lock_timeout;"
    assert "SET ROLE dot_iu_owner;" in outside and "RESET ROLE;" in outside
    assert "SET statement_timeout = 0;" in outside and "RESET statement_timeout;" in outside
    # The second transaction opens as the first did, before the version update.
    assert lines[begin + 1:begin + 3] == ["SET LOCAL lock_timeout = '5s';",
                                          "SET LOCAL ROLE dot_iu_owner;"]
    assert lines[begin + 3].startswith("UPDATE alembic_version")
    assert lines[-1] == "COMMIT;"
    psql(db_name, script)
    assert version(at_previous) == REVISION
    assert at_previous.execute(STATE).fetchall() == WANT
    assert at_previous.execute(
        "SELECT mode FROM substrate_migration_history WHERE revision = %s AND direction ="
        " 'upgrade' ORDER BY history_id DESC LIMIT 1", (REVISION,)).fetchone()[0] == "offline"


def test_the_downgrade_drops_both_in_its_step_and_a_missing_index_fails_it(db, db_url, alembic):
    step = render_sql("downgrade", f"{REVISION}:{PREVIOUS}")
    body = step[step.index(f"-- Running downgrade {REVISION}"):]
    assert "CONCURRENTLY" not in body and body.count("COMMIT;") == 1
    assert "DROP INDEX public.ix_dot_iu_command_run_plan_run_id;" in body
    db.execute("DROP INDEX public.ix_dot_iu_command_run_plan_run_id")  # drift
    result = alembic(db_url, "downgrade", PREVIOUS, check=False)
    assert result.returncode != 0
    assert "FAILED:" in result.stdout and "SQLSTATE 42704" in result.stdout, result.stdout
    assert version(db) == REVISION
    assert [row[0] for row in db.execute(STATE).fetchall()] == \
        ["ix_dot_iu_command_run_correlation_id"], "the step rolled back whole"


def test_a_callers_own_transaction_gets_the_plain_build_in_it(pg, at_previous, db_name):
    engine = create_engine(pg.url(db_name), poolclass=pool.NullPool)
    config = Config(INI)
    try:
        with engine.begin() as connection:  # the caller's transaction
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            inside = connection.exec_driver_sql(STATE).fetchall()
            assert [tuple(row) for row in inside] == WANT
            connection.rollback()
        assert version(at_previous) == PREVIOUS, "the caller rolled the step back"
        assert at_previous.execute(STATE).fetchall() == []
    finally:
        engine.dispose()


def test_helpers_v2_offer_every_helper_of_v1_under_the_same_name():
    sys.path.insert(0, str(PROJECT_ROOT / "alembic" / "helpers"))
    try:
        import revision_helpers_v1 as v1
        import revision_helpers_v2 as v2
    finally:
        sys.path.pop(0)
    public = {name for name in vars(v1) if not name.startswith("_")
              and name not in ("annotations", "Path", "op")}
    assert public <= set(v2.__all__), sorted(public - set(v2.__all__))
    for name in public:
        assert getattr(v2, name) is getattr(v1, name), name
    with pytest.raises(ValueError, match="lower-case letters"):
        v2.concurrent_indexes("public.dot_iu_command_run", [("ix; DROP TABLE x", "(a)", "c")])


def test_a_build_cut_off_by_a_lost_connection_ends_in_one_failed_line(
        pg, at_previous, db_name, db_url, alembic):
    with pg.connect(db_name, autocommit=False) as older, pg.connect(db_name) as admin:
        log(older, str(uuid.uuid4()))
        run = upgrade_in_background(db_url, "-x", "lock_timeout=60s")
        try:
            wait_for_build_waiting(admin)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'CREATE INDEX CONCURRENTLY%'")
            out, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
        older.rollback()
    assert run.returncode != 0
    assert out.startswith("FAILED: ") and out.count("\n") == 1, out + err
    assert REVISION in out
    assert "Traceback" not in out + err
    assert version(at_previous) == PREVIOUS
    alembic(db_url, "upgrade", "head")
    assert at_previous.execute(STATE).fetchall() == WANT


def test_a_failed_build_gives_a_pooled_connection_back_as_it_was(pg, at_previous, db_name):
    """A caller that shares an Engine gets its pooled connection back with the login's own role
    and settings, even when the build failed half-way through its session-level settings."""
    engine = create_engine(pg.url(db_name), pool_size=1, max_overflow=0)
    config = Config(INI)
    config.cmd_opts = argparse.Namespace(x=["lock_timeout=300ms"])
    config.attributes["connection"] = engine
    try:
        with pg.connect(db_name, autocommit=False) as older:
            log(older, str(uuid.uuid4()))
            with pytest.raises(CommandError) as caught:
                command.upgrade(config, "head")
            older.rollback()
        assert caught.value.sqlstate == "55P03"
        with engine.connect() as connection:  # the same pooled session
            got = connection.exec_driver_sql(
                "SELECT current_user = session_user, current_setting('lock_timeout'),"
                " current_setting('statement_timeout'), current_setting('client_min_messages')"
            ).fetchone()
        assert tuple(got) == (True, "0", "0", "notice")
        assert version(at_previous) == PREVIOUS
    finally:
        engine.dispose()
