"""Retention per layer on plain PostgreSQL (what local mode and CI run), with the tables as the
platform creates them: raw readings (by capture time), the stage and agg time-series models
registered in ops.warehouse_time_series (as every dbt run writes it), ml.predictions.

The TimescaleDB path (policies, dropped chunks, aggregates keeping their rows) is tested in
tests/dbt_project/test_timescaledb.py."""

from __future__ import annotations

import pytest

from iot_core.connections import pg_connect

SETUP = """
create table raw.air_quality (_id text primary key, devid text, ts text, _ingested_at timestamptz);
create table raw.users (_id text primary key, _ingested_at timestamptz);
create table raw.quarantine (source_id text primary key, _ingested_at timestamptz);
"""
STAGE = """
create table stage.stg_sensor_readings (time timestamptz, device_id text, value double precision);
create table agg.agg_device_daily (device_id text, day_start date, reading_count bigint);
create table ml.predictions (time timestamptz, device_id text, measure_name text, value double precision);
create table ops.warehouse_time_series (relation text primary key, layer text not null, time_column text not null,
                                        registered_at timestamptz not null default now());
insert into ops.warehouse_time_series (relation, layer, time_column) values
  ('stage.stg_sensor_readings', 'stage', 'time'), ('agg.agg_device_daily', 'agg', 'day_start'),
  ('stage.not_built_yet', 'stage', 'time');
"""


def count(settings, sql):
    with pg_connect("superuser", settings=settings) as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.fixture
def warehouse(isolated_warehouse):
    s = isolated_warehouse
    with pg_connect("superuser", settings=s, autocommit=True) as conn:
        conn.execute("drop table if exists raw.air_quality, raw.users, raw.quarantine, stage.stg_sensor_readings, "
                     "agg.agg_device_daily, ml.predictions, ops.warehouse_time_series, ops.retention_runs")
    with pg_connect("loader", settings=s) as conn:
        conn.execute(SETUP)
        # 1 row a day for 40 days, each day's row captured that day
        conn.execute("insert into raw.air_quality select 'a' || d, 'aq1', '', now() - make_interval(days => d) "
                     "from generate_series(0, 39) d")
        conn.execute("insert into raw.users select 'u' || d, now() - make_interval(days => d) from generate_series(0, 39) d")
        conn.execute("insert into raw.quarantine select 'q' || d, now() - make_interval(days => d) "
                     "from generate_series(0, 39) d")
    with pg_connect("transformer", settings=s) as conn:
        conn.execute(STAGE)
        conn.execute("insert into stage.stg_sensor_readings select now() - make_interval(days => d, mins => 1), 'aq1', d "
                     "from generate_series(0, 39) d")
        conn.execute("insert into agg.agg_device_daily select 'aq1', (now() - make_interval(days => d))::date, 1 "
                     "from generate_series(0, 39) d")
        conn.execute("insert into ml.predictions select now() - make_interval(days => d, mins => 1), 'aq1', 'iaq~5', 1 "
                     "from generate_series(0, 39) d")
    return s


def test_each_layer_keeps_its_days_and_the_rest_is_untouched(warehouse):
    from warehouse.retention import apply_retention

    s = warehouse.model_copy(update={"retention_raw_days": 20, "retention_stage_days": 10,
                                     "retention_predictions_days": 5, "retention_agg_days": None})
    actions = {a.relation: a for a in apply_retention(s, progress=False)}
    assert actions["raw.air_quality"].rows_deleted == 20          # captured 20..39 days ago
    assert actions["stage.stg_sensor_readings"].rows_deleted == 30  # 10..39 days ago
    assert actions["ml.predictions"].rows_deleted == 35
    assert actions["agg.agg_device_daily"].action == "kept"       # agg kept by default
    assert "stage.not_built_yet" not in actions                   # registered, not built: skipped
    assert count(s, "select count(*) from raw.air_quality") == 20
    assert count(s, "select min(now() - _ingested_at) < interval '1 minute' from raw.air_quality")
    assert count(s, "select count(*) from stage.stg_sensor_readings where time < now() - interval '10 days'") == 0
    assert count(s, "select count(*) from stage.stg_sensor_readings") == 10
    assert count(s, "select count(*) from ml.predictions") == 5
    # aggregates keep their periods; registries and the quarantine are never aged out
    assert count(s, "select count(*) from agg.agg_device_daily") == 40
    assert count(s, "select count(*) from raw.users") == count(s, "select count(*) from raw.quarantine") == 40
    # what it did is recorded; a second run finds nothing more to delete
    assert count(s, "select count(*) from ops.retention_runs where action = 'deleted'") == 3
    again = apply_retention(s, progress=False)
    assert sum(a.rows_deleted or 0 for a in again) == 0


def test_agg_retention_when_configured(warehouse):
    from warehouse.retention import apply_retention

    s = warehouse.model_copy(update={"retention_agg_days": 30, "retention_predictions_days": None})
    actions = {a.relation: a for a in apply_retention(s, progress=False)}
    assert actions["agg.agg_device_daily"].rows_deleted == 10  # the days starting 30..39 days ago (before the cut-off)
    assert actions["ml.predictions"].action == "kept"
    assert actions["raw.air_quality"].action == "kept"


def test_settings_reject_a_retention_too_short_for_the_aggregates(monkeypatch):
    from pydantic import ValidationError

    from iot_core.settings import Settings

    for too_short in ("0", "-3", "31"):  # a month that started before the horizon must be over
        monkeypatch.setenv("RETENTION_STAGE_DAYS", too_short)
        with pytest.raises(ValidationError, match="retention_stage_days"):
            Settings()
    monkeypatch.setenv("RETENTION_STAGE_DAYS", "32")
    assert Settings().retention_stage_days == 32
    monkeypatch.setenv("RETENTION_STAGE_DAYS", "")
    assert Settings().retention_stage_days is None  # empty in .env: kept forever
    assert Settings().retention_predictions_days == 30  # the default


def test_job_health_on_plain_postgresql_says_so(warehouse):
    from warehouse.job_health import record_job_errors

    health = record_job_errors(warehouse)
    assert health.healthy
    if count(warehouse, "select count(*) from pg_extension where extname = 'timescaledb'"):
        assert health.timescaledb and "no failures" in health.summary()  # a TimescaleDB build (PG_BIN)
    else:
        assert not health.timescaledb and "plain PostgreSQL" in health.summary()


def test_known_problem_is_named_in_the_summary():
    from warehouse.job_health import JobHealth, known_problem

    assert known_problem('cannot drop portal "" while it is being set up')
    assert known_problem("boom") is None
    health = JobHealth(timescaledb=True, version="2.28.3 on PostgreSQL 15.20", jobs=5, failures=3,
                       failing_jobs=("1000 policy_compression stage.stg_sensor_readings",),
                       last_error='cannot drop portal "" while it is being set up',
                       known_problem=known_problem('cannot drop portal "" while it is being set up'))
    assert not health.healthy and "15.20" in health.summary() and "docs/warehouse.md" in health.summary()
