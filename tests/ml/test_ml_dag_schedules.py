"""Schedules of the two forecasting DAGs (parsed from the real DAG files, no services)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest


def test_training_runs_mondays_at_midnight_in_the_training_timezone(load_dag, monkeypatch):
    from iot_core.settings import get_settings

    monkeypatch.setenv("TRAINING_TIMEZONE", "Australia/Sydney")   # seed 000: Monday 00:00 UTC+11
    get_settings.cache_clear()
    try:
        dag = load_dag("iot_train_models")
    finally:
        monkeypatch.delenv("TRAINING_TIMEZONE")
        get_settings.cache_clear()
    timetable = dag.timetable
    assert type(timetable).__name__ == "CronTriggerTimetable"
    assert timetable.expression == "0 0 * * 1"
    assert "Australia/Sydney" in str(timetable.timezone)
    # what the scheduler computes from it: after a Sunday noon in Sydney, Monday 00:00 Sydney time
    from airflow.timetables.trigger import CronTriggerTimetable

    sunday = datetime(2026, 11, 22, 12, 0, tzinfo=ZoneInfo("Australia/Sydney"))
    nxt = CronTriggerTimetable(timetable.expression, timezone=timetable.timezone)._get_next(sunday)
    local = nxt.astimezone(ZoneInfo("Australia/Sydney"))
    assert (local.weekday(), local.hour, local.minute) == (0, 0, 0)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.default_args["retries"] > 0 and dag.default_args["on_failure_callback"]
    assert "ml" in dag.tags and dag.doc_md


def test_forecast_runs_every_minute_and_on_the_stage_asset(load_dag):
    from orchestration.assets import IAQ_MINUTELY_ASSET

    dag = load_dag("iot_forecast")
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert timetable.timetable.expression == "* * * * *"
    assert IAQ_MINUTELY_ASSET in timetable.asset_condition.objects
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.doc_md and "forecast" in dag.tags


@pytest.mark.parametrize("dag_id", ["iot_train_models", "iot_forecast"])
def test_dags_use_the_shared_default_args(load_dag, dag_id):
    from orchestration.defaults import DEFAULT_ARGS

    dag = load_dag(dag_id)
    for key in ("owner", "retries", "retry_exponential_backoff", "on_failure_callback"):
        assert dag.default_args[key] == DEFAULT_ARGS[key]
