"""Gate readers fail closed (docs/gates.md): a gate reads open only when its value is exactly
'true' inside a live window opened through the protocol; anything else reads closed."""

from __future__ import annotations

import pgtap
import pytest
from gate_helpers import GOVERNABLE, gate_open

READERS = {
    "fn_iu_composer_enabled": "iu_core.composer_enabled",
    "fn_iu_structure_ops_enabled": "iu_core.structure_ops_enabled",
    "fn_iu_delivery_enabled": "iu_core.delivery_enabled",
    "fn_iu_three_axis_auto_refresh_enabled": "iu_core.three_axis_auto_refresh_enabled",
    "fn_queue_job_substrate_enabled": "queue.job_substrate.enabled",
    "fn_queue_dlq_replay_enabled": "queue.dlq.replay_enabled",
    "fn_dot_iu_operator_runtime_enabled": "iu_core.operator_runtime_enabled",
    "fn_iu_vector_sync_enabled": "iu_core.vector_sync_enabled",
}
GOVERNABLE_READERS = [reader for reader, gate in READERS.items() if gate in GOVERNABLE]
NOT_TRUE = ["false", "TRUE ", "TRUE", "True", " true", "true ", "yes", "1", "on", "t", "",
            "null", "NULL"]


def read(conn, reader) -> bool:
    return conn.execute(f"SELECT {reader}()").fetchone()[0]


def write_behind_the_guard(conn, gate: str, value: str) -> None:
    """A value no protocol call writes: only a superuser with the guard disabled can."""
    with conn.transaction():
        conn.execute("ALTER TABLE dot_config DISABLE TRIGGER tg_dot_config_gate_guard")
        conn.execute("UPDATE dot_config SET value = %s WHERE key = %s", (value, gate))
        conn.execute("ALTER TABLE dot_config ENABLE ALWAYS TRIGGER tg_dot_config_gate_guard")


@pytest.mark.parametrize("reader", READERS)
def test_reader_is_false_at_the_safe_default(db, reader):
    assert read(db, reader) is False


@pytest.mark.parametrize("reader", GOVERNABLE_READERS)
def test_reader_is_true_inside_a_window_opened_through_the_protocol(db, reader):
    gate_open(db, gate=READERS[reader], ttl=60)
    assert read(db, reader) is True


@pytest.mark.parametrize("reader", READERS)
def test_reader_is_false_for_a_true_value_with_no_window(db, reader):
    write_behind_the_guard(db, READERS[reader], "true")
    assert read(db, reader) is False


@pytest.mark.parametrize("value", NOT_TRUE)
@pytest.mark.parametrize("reader", GOVERNABLE_READERS)
def test_reader_is_false_for_any_other_value_even_inside_a_window(db, reader, value):
    gate_open(db, gate=READERS[reader], ttl=60)
    db.execute("UPDATE dot_config SET value = %s WHERE key = %s", (value, READERS[reader]))
    assert read(db, reader) is False


@pytest.mark.parametrize("reader", READERS)
def test_reader_is_false_when_the_key_is_missing(db, reader):
    db.execute("DELETE FROM dot_config WHERE key = %s", (READERS[reader],))
    pgtap.results_eq(db, f"SELECT {reader}()", [(False,)])


@pytest.mark.parametrize("reader", READERS)
def test_reader_reads_only_its_own_gate(db, reader):
    for gate in GOVERNABLE:
        if gate != READERS[reader]:
            gate_open(db, gate=gate, ttl=60)
    assert read(db, reader) is False


@pytest.mark.parametrize("reader", READERS)
def test_reader_is_a_stable_definer_with_a_pinned_search_path(db, reader):
    pgtap.volatility_is(db, reader, [], "stable")
    pgtap.is_definer(db, reader, [])
    pgtap.search_path_pinned(db, reader, [])
    pgtap.execute_revoked_from_public(db, reader, [])
