"""The iot_alerts DAG: its schedule on the stage and forecast assets, and real runs (dag.test())
over readings that went raw -> dbt stage build -> alert, with a receiver on a local port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alerts_support import Receiver, load_raw_fixture, query

from iot_core.connections import pg_connect
from iot_core.settings import get_settings


def test_scheduled_on_stage_and_predictions_and_every_minute(load_dag):
    dag = load_dag("iot_alerts")
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert {a.name for a in timetable.asset_condition.objects} == {"stage.all", "ml.predictions"}
    assert type(timetable.asset_condition).__name__ == "AssetAny"
    assert timetable.timetable.expression == "* * * * *"
    assert dag.max_active_runs == 1 and not dag.catchup
    (t,) = dag.tasks
    assert t.owner == "data-platform" and t.retries >= 1 and t.on_failure_callback


@pytest.fixture
def dag_env(platform, wh, monkeypatch, tmp_path):
    receiver = Receiver()
    rules = tmp_path / "rules.yml"
    rules.write_text("""rules:
  - {id: co2-high, kind: threshold, measure: co2, above: 1000, for: 2m, hysteresis: 50}
  - {id: silent, kind: no_data, for: 10m, scope: {kind: air_quality}}
""")
    monkeypatch.setenv("WAREHOUSE_DB", wh.warehouse_db)
    monkeypatch.setenv("ALERT_RULES_FILE", str(rules))
    monkeypatch.setenv("ALERT_WEBHOOKS", f"ops={receiver.url}")
    get_settings.cache_clear()
    yield get_settings(), receiver, rules
    receiver.close()
    monkeypatch.undo()
    get_settings.cache_clear()


def test_dag_runs_raise_and_resolve_an_alert_from_readings_built_by_dbt(dag_env, load_dag):
    from dbt_project.runner import build

    settings, receiver, _ = dag_env
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    raw = load_raw_fixture()

    def reading_minutes(values, start):
        """air-quality payloads into raw (as the extract writes them), then the stage build."""
        with pg_connect("loader", settings=settings) as conn:
            rows = [("aq-1", (start + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     [60.0, 21.0, 40.0, 101.0, 0.5, co2, 3.0]) for m, co2 in enumerate(values)]
            raw.RawWriter(conn, load_id=f"l{start:%H%M}").air_quality(rows, ingested_at=datetime.now(UTC))
        build(["stg_sensor_readings"], settings=settings)

    dag = load_dag("iot_alerts")
    reading_minutes([800, 1200, 1250, 1300], now - timedelta(minutes=8))
    first = dag.test()
    assert first.state == "success"
    assert query(settings, "select rule_id, device_id, state from ops.alert_events where fired_at is not null") == [
        ("co2-high", "aq-1", "firing")]
    assert [r["body"]["status"] for r in receiver.requests] == ["firing"]
    # a re-run of the same run changes nothing and sends nothing
    before = query(settings, "select * from ops.alert_events order by id")
    again = dag.test(logical_date=first.logical_date)
    assert again.state == "success"
    assert query(settings, "select * from ops.alert_events order by id") == before
    assert len(receiver.requests) == 1
    reading_minutes([900, 900], now - timedelta(minutes=4))
    assert dag.test().state == "success"
    assert query(settings, "select rule_id, state from ops.alert_events where fired_at is not null") == [
        ("co2-high", "resolved")]
    assert [r["body"]["status"] for r in receiver.requests] == ["firing", "resolved"]
    # the other devices of the registry never sent a reading: the no-data rule does not watch them
    assert query(settings, "select count(*) from ops.alert_events where rule_id = 'silent'") == [(0,)]


def test_a_bad_rule_file_fails_the_run_at_once_with_the_reason(dag_env, load_dag):
    settings, _, rules = dag_env
    rules.write_text("rules:\n  - {id: co2-high, kind: threshold, measure: co3, above: 1000}\n")
    run = load_dag("iot_alerts").test()
    assert run.state == "failed"
    assert query(settings, "select count(*) from ops.alert_runs") == [(0,)]     # nothing was evaluated
    (exception,) = query(settings, "select exception from ops.task_failures where dag_id = 'iot_alerts'")[-1]
    assert "unknown measure 'co3'" in exception
