"""Alembic behaves like Alembic (docs/migrations.md): tools that drive it programmatically work,
every failure is one FAILED: line, and a multi-step downgrade refuses before it changes anything.

pytest-alembic's own built-in tests run here, against a fresh database of the suite's server:
single head, upgrade, up/down consistency, and the experimental "downgrade leaves no trace".
Its plugin's automatic collector sets a node attribute that pytest 9.2 no longer has, so the
plugin stays off (pyproject.toml) and this module imports the tests and provides the fixtures
the plugin would: ``alembic_config`` (the project's alembic.ini) and ``alembic_engine``.
"""

from __future__ import annotations

import subprocess

import alembic_cli as alembic_cli_runner
import pgtap
import psycopg
import pytest
from alembic.config import Config
from conftest import PROJECT_ROOT, render_sql
from gate_helpers import GATE, gate_open
from pytest_alembic.plugin.fixtures import alembic_runner  # noqa: F401 - a fixture
from pytest_alembic.tests import (
    test_single_head_revision,  # noqa: F401 - collected here
    test_up_down_consistency,  # noqa: F401 - collected here
    test_upgrade,  # noqa: F401 - collected here
)
from pytest_alembic.tests.experimental import (  # noqa: F401 - collected here
    test_downgrade_leaves_no_trace,
)
from sqlalchemy import create_engine, pool

from alembic import command
from substrate.review import schema_snapshot
from substrate.review.tree import Tree

HEAD = Tree().head()
REVISIONS = Tree().applied(HEAD)  # base first


def steps_down(target: str) -> int:
    """How many steps a downgrade from head to ``target`` runs."""
    return len(REVISIONS) - 1 - REVISIONS.index(target)

INI = str(PROJECT_ROOT / "alembic.ini")


@pytest.fixture
def alembic_config():
    return {"file": INI}


@pytest.fixture
def alembic_engine(pg, empty_db_name):
    engine = create_engine(pg.url(empty_db_name), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def alembic_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return alembic_cli_runner.run(["-c", INI, "-x", f"url={url}", *args], cwd=PROJECT_ROOT)


def version(conn) -> str | None:
    return schema_snapshot.revision(conn)


# -- a connection shared by a programmatic caller -----------------------------------------------

def test_a_caller_shares_its_connection_through_config_attributes(pg, empty_db_name):
    """The Alembic cookbook's way: env.py uses the caller's connection, and a connection already
    in a transaction keeps every step in it, for the caller to commit or roll back."""
    engine = create_engine(pg.url(empty_db_name), poolclass=pool.NullPool)
    config = Config(INI)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003_operator_runtime")
            connection.commit()
        with pg.connect(empty_db_name) as conn:
            assert version(conn) == "0003_operator_runtime"
        with engine.begin() as connection:  # the caller's transaction
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.rollback()
        with pg.connect(empty_db_name) as conn:
            assert version(conn) == "0003_operator_runtime", "the caller rolled the steps back"
    finally:
        engine.dispose()


def test_a_programmatic_caller_gets_the_sqlstate_of_a_refusal(pg, db, db_url):
    gate_open(db)
    config = Config(INI)
    config.attributes["connection"] = create_engine(db_url, poolclass=pool.NullPool)
    from alembic.util import CommandError

    with pytest.raises(CommandError) as caught:
        command.downgrade(config, "0002_migration_history")
    assert caught.value.sqlstate == "55000"
    assert isinstance(caught.value.__cause__.orig, psycopg.Error)
    assert caught.value.__cause__.orig.sqlstate == "55000"
    assert version(db) == HEAD


# -- one line, never a traceback ----------------------------------------------------------------

def test_a_refused_downgrade_prints_one_failed_line_with_sqlstate_and_hint(db, db_url):
    gate_open(db)
    result = alembic_cli(db_url, "-x", "allow_data_loss=true", "downgrade",
                         "0009_tally_watermark")
    assert result.returncode != 0
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED: ")]
    assert len(failed) == 1, result.stdout
    assert "SQLSTATE 55000" in failed[0] and "HINT: " in failed[0]
    assert GATE in failed[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("url,fragment", [
    ("postgresql://postgres@127.0.0.1:1/nothing", "cannot connect to postgresql://postgres@"),
    ("notaurl", "bad database URL"),
    ("postgresql+psycopg://postgres:secret@127.0.0.1:1/x", "***"),
])
def test_an_unreachable_server_or_a_bad_url_prints_one_failed_line(url, fragment):
    result = alembic_cli(url, "upgrade", "head")
    assert result.returncode != 0
    assert result.stdout.startswith("FAILED: ") and result.stdout.count("\n") == 1
    assert fragment in result.stdout
    assert "secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("url", ["notaurl", "postgresql://u@h:abc/db", "foo://x/y"])
def test_a_bad_url_rendering_sql_prints_one_failed_line(url):
    result = alembic_cli(url, "upgrade", "head", "--sql")
    assert result.returncode != 0
    assert result.stdout.startswith("FAILED: bad database URL")
    assert "Traceback" not in result.stdout + result.stderr


# -- a multi-step downgrade refuses before its first step ----------------------------------------

def _state(pg, dbname: str):
    with pg.connect(dbname) as conn:
        return schema_snapshot.take(conn), version(conn), conn.execute(
            "SELECT count(*) FROM dot_iu_ledger_seal").fetchone()[0]


def test_a_range_with_a_refusing_step_changes_nothing_online(pg, db, db_name, db_url):
    """The gates step (0011) refuses while a gate is open, whatever allow_data_loss says; the
    steps above it (0015 to 0012, which drops the seals with the acknowledgement) would
    have gone through and committed one by one. Rehearsed, none of them runs."""
    gate_open(db)
    before = _state(pg, db_name)
    result = alembic_cli(db_url, "-x", "allow_data_loss=true", "downgrade",
                         "0002_migration_history")
    assert result.returncode != 0
    assert "refused before any step ran" in result.stdout
    assert "0011_gates_fail_closed -> 0010_least_privilege" in result.stdout
    assert "Running downgrade" not in result.stderr, "no step ran for real"
    assert _state(pg, db_name) == before


def test_a_range_with_a_refusing_step_changes_nothing_rendered(pg, db, db_name, psql):
    gate_open(db)
    before = _state(pg, db_name)
    script = render_sql("-x", "allow_data_loss=true", "downgrade",
                        f"{HEAD}:0002_migration_history")
    steps = steps_down("0002_migration_history")
    head, _, body = script.partition("ROLLBACK;")
    assert "-- Rehearsal of the downgrade" in head and head.count("-- Running downgrade") == steps
    assert body.count("-- Running downgrade") == steps and body.count("COMMIT;") == steps
    result = psql(db_name, script, check=False)
    assert result.returncode != 0
    assert "refusing to restore readers that read the value alone" in result.stderr
    assert _state(pg, db_name) == before


def test_a_range_that_passes_its_rehearsal_runs_step_by_step(db, db_url):
    result = alembic_cli(db_url, "downgrade", "0011_gates_fail_closed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rehearsed the downgrade {HEAD} -> 0011_gates_fail_closed" in result.stderr
    assert result.stderr.count("Running downgrade") == steps_down("0011_gates_fail_closed")
    assert version(db) == "0011_gates_fail_closed"
    pgtap.hasnt_table(db, "dot_iu_ledger_seal")
