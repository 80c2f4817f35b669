"""Gate readers fail closed: only the exact value 'true' reads as on (SPEC 3.1)."""

from __future__ import annotations

import pgtap
import pytest

READERS = {
    "fn_iu_composer_enabled": "iu_core.composer_enabled",
    "fn_iu_structure_ops_enabled": "iu_core.structure_ops_enabled",
    "fn_iu_delivery_enabled": "iu_core.delivery_enabled",
    "fn_iu_three_axis_auto_refresh_enabled": "iu_core.three_axis_auto_refresh_enabled",
    "fn_iu_vector_sync_enabled": "iu_core.vector_sync_enabled",
    "fn_dot_iu_operator_runtime_enabled": "iu_core.operator_runtime_enabled",
}
NOT_TRUE = ["false", "TRUE ", "TRUE", "True", " true", "true ", "yes", "1", "on", "t", "",
            "null", "NULL"]


def read(conn, reader) -> bool:
    return conn.execute(f"SELECT {reader}()").fetchone()[0]


@pytest.mark.parametrize("reader", READERS)
def test_reader_is_false_at_the_safe_default(db, reader):
    assert read(db, reader) is False


@pytest.mark.parametrize("reader", READERS)
def test_reader_is_true_only_for_exact_true(db, reader):
    if reader == "fn_dot_iu_operator_runtime_enabled":  # v2 also wants a live window (SPEC 3.4)
        db.execute("SELECT fn_iu_gate_open(%s, 'CHG-1', 'ops', 'reader test', 60)",
                   (READERS[reader],))
    else:
        db.execute("UPDATE dot_config SET value = 'true' WHERE key = %s", (READERS[reader],))
    assert read(db, reader) is True


@pytest.mark.parametrize("value", NOT_TRUE)
@pytest.mark.parametrize("reader", READERS)
def test_reader_is_false_for_any_other_value(db, reader, value):
    db.execute("UPDATE dot_config SET value = %s WHERE key = %s", (value, READERS[reader]))
    assert read(db, reader) is False


@pytest.mark.parametrize("reader", READERS)
def test_reader_is_false_when_the_key_is_missing(db, reader):
    db.execute("DELETE FROM dot_config WHERE key = %s", (READERS[reader],))
    pgtap.results_eq(db, f"SELECT {reader}()", [(False,)])


@pytest.mark.parametrize("reader", READERS)
def test_reader_reads_only_its_own_gate(db, reader):
    others = [key for key in READERS.values() if key != READERS[reader]]
    db.execute("UPDATE dot_config SET value = 'true' WHERE key = ANY(%s)", (others,))
    assert read(db, reader) is False
