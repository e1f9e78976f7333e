"""The hot path MongoDB -> raw -> stage -> forecast: which assets an extract announces, which dbt
models a stage run builds, and the shape of the DAGs that carry it (few task processes per reading)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from orchestration.asset_events import (
    announce_raw_updates,
    load_ids_of,
    newest_event_time,
    rows_per_raw_asset,
    stage_selection,
)

EXTRACT_RESULT = {
    "loaded": {"air_quality": 12, "heart_rates": 0, "heart_rates__metrics": 0, "steps": 2, "steps__metrics": 30,
               "users": 0, "devices": 0},
    "quarantined": {"air_quality": 1, "steps": 0},
    "load_ids": ["1763850000.1"],
}


class RecordingAliasEvents:
    """Stands in for Airflow's outlet-events accessor of an asset alias (records what is added)."""

    def __init__(self):
        self.added = []

    def add(self, asset, extra=None):
        self.added.append((asset.name, extra))


def test_only_tables_that_got_rows_are_announced_with_their_loads():
    assert rows_per_raw_asset(EXTRACT_RESULT) == {"air_quality": 12, "steps": 32, "quarantine": 1}
    events = RecordingAliasEvents()
    announce_raw_updates(EXTRACT_RESULT, events)
    assert sorted(name for name, _ in events.added) == ["raw.air_quality", "raw.quarantine", "raw.steps"]
    assert all(extra["load_ids"] == ["1763850000.1"] for _, extra in events.added)
    nothing_new = RecordingAliasEvents()
    announce_raw_updates({"loaded": {"air_quality": 0}, "quarantined": {}, "load_ids": []}, nothing_new)
    assert nothing_new.added == []


def triggering(*extras):
    return {"raw": [SimpleNamespace(extra=e) for e in extras]}


def test_a_stage_run_validates_every_load_of_the_batched_extract_runs():
    events = triggering({"table": "air_quality", "load_ids": ["2", "1"]}, {"table": "steps", "load_ids": ["3"]},
                        {"table": "air_quality", "load_ids": ["3"]})
    assert load_ids_of(events) == ["1", "2", "3"]
    assert load_ids_of(None) == []


def test_a_stage_run_selects_the_models_of_the_announced_tables():
    assert stage_selection(triggering({"table": "air_quality"}, {"table": "air_quality"})) == [
        "source:raw.air_quality*+,tag:stage", "dim_devices"]
    assert stage_selection(triggering({"table": "steps"}, {"table": "devices"})) == [
        "source:raw.devices*+,tag:stage", "source:raw.steps*+,tag:stage", "dim_devices"]
    assert stage_selection(None) == ["tag:stage"]  # a manual run builds all of stage
    assert stage_selection(triggering({"rows": 3})) == ["tag:stage"]


def test_a_stage_model_never_built_makes_the_run_build_all_of_stage(isolated_warehouse):
    """A fresh platform whose first stage run failed: the devices event was spent, dim_devices was
    never built, and every later air-quality run failed on its relationship test to dim_devices."""
    from iot_core.connections import pg_connect
    from orchestration.dbt_tasks import unbuilt_models

    unbuilt = unbuilt_models("stage")
    assert {"stage.dim_devices", "stage.stg_sensor_readings"} <= set(unbuilt)
    assert stage_selection(triggering({"table": "air_quality"}), unbuilt) == ["tag:stage"]
    with pg_connect("transformer", autocommit=True) as conn:
        for relation in unbuilt:  # stands in for a complete build: every relation exists
            conn.execute(f"create table {relation} (x int)")
    assert unbuilt_models("stage") == []
    assert stage_selection(triggering({"table": "air_quality"}), []) == ["source:raw.air_quality*+,tag:stage",
                                                                         "dim_devices"]


def test_an_asset_triggered_forecast_issues_at_its_newest_stage_update():
    older, newer = datetime(2026, 11, 23, 0, 3, 58, tzinfo=UTC), datetime(2026, 11, 23, 0, 4, 41, tzinfo=UTC)
    events = {"stage.iaq_minutely": [SimpleNamespace(timestamp=older, extra={}),
                                     SimpleNamespace(timestamp=newer, extra={})]}
    assert newest_event_time(events) == newer
    assert newest_event_time({}) is None and newest_event_time(None) is None


@pytest.fixture(scope="module")
def dbt_ls():
    """Model names dbt selects for a list of selectors (dbt ls, no database needed)."""
    from dbt.cli.main import dbtRunner

    from dbt_project.runner import PROFILES_DIR, PROJECT_DIR, dbt_env

    def ls(selection: list[str]) -> set[str]:
        import os

        os.environ.update(dbt_env(timescaledb=False))
        res = dbtRunner().invoke(["ls", "--resource-type", "model", "--select", *selection, "--output", "name",
                                  "--quiet", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
                                  "--target-path", str(PROJECT_DIR / "target" / "test_hot_path")])
        assert res.success, res.exception
        return set(res.result)

    return ls


def test_the_selectors_reach_the_forecast_input_and_skip_unrelated_models(dbt_ls):
    air = dbt_ls(stage_selection(triggering({"table": "air_quality"})))
    assert {"stg_sensor_readings", "iaq_minutely"} <= air
    assert "dim_devices" in air      # the registry the checks read, built with every selection
    assert not air & {"stg_heart_rate", "stg_steps", "dim_users", "curated_research_minutely", "agg_device_daily"}
    # the child table (<table>__metrics) is covered by the wildcard
    assert "stg_steps" in dbt_ls(stage_selection(triggering({"table": "steps"})))
    assert dbt_ls(["tag:stage"]) >= air | {"stg_heart_rate", "dim_devices"}


def test_the_hot_path_dags_run_one_task_process_per_step(load_dag):
    extract = load_dag("iot_raw_extract")
    assert [t.task_id for t in extract.tasks] == ["extract"]
    assert [o.name for o in extract.get_task("extract").outlets] == ["raw.updated_tables"]
    assert extract.max_active_runs == 1

    stage = load_dag("iot_stage_transform")
    assert [t.task_id for t in stage.tasks] == ["build_stage"]
    assert {o.name for o in stage.get_task("build_stage").outlets} == {"stage.all", "stage.iaq_minutely"}
    # the checkpoint runs beside the stage build, in a DAG of its own, so no stage run waits for it
    validate = load_dag("iot_raw_validate")
    assert validate.timetable.asset_condition == stage.timetable.asset_condition
    forecast = load_dag("iot_forecast")
    assert "stage.iaq_minutely" in {a.name for a in forecast.timetable.asset_condition.objects}


def test_the_local_scheduler_preloads_the_task_libraries_without_starting_threads():
    # tasks are forked from the scheduler: a thread alive at fork time could deadlock a task
    import subprocess
    import sys

    code = ("from iot_cli.localstack.scheduler import PRELOADED_MODULES, preload, thread_count\n"
            "loaded = preload()\n"
            "assert loaded == list(PRELOADED_MODULES), loaded\n"
            "print(thread_count())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_extract_loads_of_different_dags_never_overlap(services, monkeypatch):
    # iot_raw_extract (continuous), iot_master_dag and `iot extract` share one dlt pipeline,
    # which dlt does not lock: load_raw holds a warehouse advisory lock while it loads
    from dlt_pipelines import load_raw, pipeline
    from iot_core.connections import pg_connect
    from iot_core.locks import EXTRACT_LOCK_KEY

    def lock_is_free() -> bool:
        with pg_connect("loader", autocommit=True) as other:
            free = other.execute("select pg_try_advisory_lock(%s)", (EXTRACT_LOCK_KEY,)).fetchone()[0]
            if free:
                other.execute("select pg_advisory_unlock(%s)", (EXTRACT_LOCK_KEY,))
            return free

    seen = {}

    def load_that_looks_at_the_lock(collections, progress, **kwargs):  # stands in for the dlt load, not a database
        seen["free_during_load"] = lock_is_free()
        return {"loaded": {}, "called_with": collections}

    monkeypatch.setattr(pipeline, "_load_raw_unlocked", load_that_looks_at_the_lock)
    assert load_raw(collections=["users"])["called_with"] == ["users"]
    assert seen["free_during_load"] is False
    assert lock_is_free()  # released when the load returns
