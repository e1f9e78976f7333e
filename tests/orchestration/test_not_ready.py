"""Every DAG switched on before the platform has data (a fresh `make up`): the runs that have
nothing to do yet are skipped with the reason, never failed. Seen in a stack run: the export,
the training, the forecast (every minute) and the trip summary failed before the first stage
build, and red runs hid the real failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from iot_core.settings import get_settings

pytestmark = pytest.mark.slow

WHEN = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize("dag_id", ["iot_export_csv", "iot_train_models", "iot_forecast", "trip_summary_daily"])
def test_a_dag_with_nothing_to_do_yet_is_skipped_with_the_reason(platform, isolated_warehouse, load_dag, dag_id,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORT_DIR", str(tmp_path))
    monkeypatch.setenv("TRIPS_CONFIG", "")
    monkeypatch.setenv("TRIPS_LAKE_ROOT", "")
    get_settings.cache_clear()
    try:
        run = load_dag(dag_id).test(logical_date=WHEN)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert set(states.values()) == {"skipped"}, states
