"""ml.schema.ensure_schema on PostgreSQL: a no-op that locks nothing once the tables are complete
(every forecast and training process calls it while forecast tasks write), and still the upgrade
path when something is missing."""

from __future__ import annotations

import pytest
from ml_testdata import reset_ml_tables

from iot_core.connections import pg_connect
from ml import schema


@pytest.fixture
def fresh_process():
    """ensure_schema as a new process sees it (its once-per-process memo empty)."""
    saved = set(schema._created)
    schema._created.clear()
    yield
    schema._created.clear()
    schema._created.update(saved)


def test_a_process_starting_beside_a_forecast_write_waits_for_no_lock(services, fresh_process):
    """`make demo` stopped with a deadlock: its training's ensure_schema ran `alter table ... add
    column if not exists` (an exclusive lock, even with the column there) while a forecast task
    held ml.forecast_runs and waited for ml.predictions, which the DDL held."""
    reset_ml_tables()
    schema._created.clear()
    with pg_connect("transformer") as writer:  # a forecast cycle in the middle of its transaction
        writer.execute("insert into ml.forecast_runs (issue_minute) values (now())")
        writer.execute("insert into ml.predictions values (now(), 'd1', 'iaq~5', 1, 'm', '1', now())")
        with pg_connect("transformer", autocommit=True) as conn:
            conn.execute("set lock_timeout = '2s'")  # the old DDL waited here, then deadlocked
            schema.ensure_schema(conn)
        writer.rollback()


def test_a_missing_column_is_still_added(services, fresh_process):
    reset_ml_tables()
    table, column = schema.ADDED_COLUMNS[-1]
    with pg_connect("transformer", autocommit=True) as conn:
        conn.execute(f"alter table ml.{table} drop column {column}")
        schema._created.clear()
        schema.ensure_schema(conn)
        assert conn.execute("select count(*) from information_schema.columns where table_schema = 'ml' "
                            "and table_name = %s and column_name = %s", (table, column)).fetchone()[0] == 1
