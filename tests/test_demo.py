"""`substrate proof`, the live proof `make demo` runs after its report (docs/runtime.md): the
original design's four steps on a scratch database with labelled IU Core stand-ins.

Each test points the proof at a fresh, empty database of the test cluster (as `make demo`
points it at the demo database) and gives it a scratch database name of its own, dropped after.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT
from psycopg import sql

from substrate import cli
from substrate.demo import proof_db

_names = itertools.count(1)
HEALTHCHECK_ROW = ["dot_iu_healthcheck", "3", "1", "0", "0", "verified"]
ADD_PIECE_ROW = ["dot_iu_add_piece", "1", "0", "1", "0", "refused"]


@pytest.fixture
def demo(pg):
    """(URL of a fresh empty demo database, a scratch database name); both dropped after."""
    name = f"demo_{os.getpid()}_{next(_names)}"
    scratch = f"proof_{os.getpid()}_{next(_names)}"
    pg.clone(name, "template0")
    yield pg.url(name), scratch
    pg.drop_clone(name)
    pg.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(scratch)))


def proof(capsys, url: str, scratch: str) -> tuple[int, str, str]:
    code = cli.main(["proof", "--url", url, "--scratch-db", scratch])
    out, err = capsys.readouterr()
    return code, out, err


def lines_split(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def gates_left_open(pg, scratch: str) -> list[str]:
    with pg.connect(scratch) as conn:
        report = conn.execute("SELECT fn_iu_gate_verify_closed()").fetchone()[0]
        assert report["all_governed_closed"] is True and report["all_safe"] is True
        return [row[0] for row in conn.execute(
            "SELECT key FROM dot_config WHERE value <> 'false' ORDER BY key")]


def test_the_proof_holds_on_a_fresh_database_and_leaves_every_gate_closed(pg, demo, capsys):
    url, scratch = demo
    code, out, err = proof(capsys, url, scratch)
    assert (code, err) == (0, ""), out + err
    for step in ("P1  open the runtime gate", "P2  plan, apply and verify dot_iu_healthcheck",
                 "P3  apply dot_iu_add_piece with the composer gate shut",
                 "P4  close the runtime gate"):
        assert step in out
    assert HEALTHCHECK_ROW in lines_split(out) and ADD_PIECE_ROW in lines_split(out)
    assert "answered: refused (run 5): gate(s) shut: iu_core.composer_enabled" in out
    assert "STAND-IN" in out and "not IU Core" in out
    assert "finally: every gate ends closed, whatever happened above: nothing was left open" \
        in out
    assert out.rstrip().endswith("every gate closed: the proof holds")
    assert gates_left_open(pg, scratch) == []
    with pg.connect(scratch) as conn:
        labelled = conn.execute(  # the 15 IU Core targets resolve, each to a labelled stand-in
            "SELECT count(DISTINCT p.oid) FROM dot_iu_command_catalog AS c"
            " JOIN pg_proc AS p ON p.oid = to_regprocedure(c.target_function)"
            " WHERE obj_description(p.oid, 'pg_proc') LIKE 'DEMO STAND-IN for IU Core%'"
        ).fetchone()[0]
        assert labelled == 15
    with pg.connect(url.rsplit("/", 1)[1]) as conn:  # the demo database itself: untouched
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = "
                            "'public'::regnamespace").fetchone()[0] == 0


def test_a_second_run_recreates_the_scratch_database_and_holds_again(pg, demo, capsys):
    url, scratch = demo
    assert proof(capsys, url, scratch)[0] == 0
    second = subprocess.run(
        [sys.executable, "-m", "substrate.demo.proof", "--url", url, "--scratch-db", scratch],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert (second.returncode, second.stderr) == (0, ""), second.stdout + second.stderr
    assert HEALTHCHECK_ROW in lines_split(second.stdout)  # 3 runs, not 6: a fresh database
    assert ADD_PIECE_ROW in lines_split(second.stdout)
    assert gates_left_open(pg, scratch) == []


def test_a_step_that_does_not_hold_exits_1_and_every_gate_still_ends_closed(
        pg, demo, capsys, monkeypatch):
    """The composer gate open behind the proof's back: P3's apply reaches the refusing
    stand-in and fails instead of being refused; the finally closes both open gates."""
    url, scratch = demo
    recreate = proof_db.recreate

    def recreate_with_the_composer_gate_open(*args):
        target = recreate(*args)
        with pg.connect(scratch) as conn:
            conn.execute("SELECT fn_iu_gate_open('iu_core.composer_enabled', 'CHG-1', 'test',"
                         " 'a step that does not hold', 600)")
        return target

    monkeypatch.setattr(proof_db, "recreate", recreate_with_the_composer_gate_open)
    code, out, err = proof(capsys, url, scratch)
    assert code == 1, out + err
    assert err.splitlines() == ["substrate proof: does not hold: apply dot_iu_add_piece: "
                                "expected refused, got failed (command: SQLSTATE 0A000: "
                                "IU Core stand-in fn_iu_collection_add_piece called: a demo "
                                "stand-in, not IU Core)"]
    assert "P4" not in out
    finally_line = next(line for line in out.splitlines() if line.startswith("finally:"))
    assert "closed iu_core.composer_enabled, iu_core.operator_runtime_enabled" in finally_line
    assert gates_left_open(pg, scratch) == []


def test_the_proof_never_drops_a_database_it_did_not_make(pg, demo, capsys):
    url, scratch = demo
    pg.clone(scratch, "template0")  # someone's database, by the scratch name
    code, out, err = proof(capsys, url, scratch)
    assert (code, out) == (2, "")
    assert err == (f"substrate proof: could not run: a database {scratch} exists that "
                   "substrate proof did not make; it is left alone: pass another --scratch-db\n")
    with pg.connect(scratch) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    demo_db = url.rsplit("/", 1)[1]
    code, _, err = proof(capsys, url, demo_db)
    assert code == 2 and "would be the demo database itself" in err
