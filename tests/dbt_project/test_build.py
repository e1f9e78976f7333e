"""The warehouse build on a small scenario: stage contracts, rejects, gap filling, aggregates,
seed 001's analyses, consent rules, comments, idempotent re-runs and late data."""

from __future__ import annotations

from datetime import timedelta

from conftest import DAY, FIRST_LOAD_AT, snapshot  # noqa: F401  (pytest puts this folder on sys.path)

from dbt_project.raw_fixture import RawWriter
from dbt_project.runner import build
from iot_core.connections import pg_connect


def q(settings, sql, *params):
    with pg_connect("superuser", settings=settings) as conn:
        return conn.execute(sql, params).fetchall()


def test_stage_sensor_readings_follow_the_contract(built):
    cols = q(built, "select column_name, data_type from information_schema.columns "
                    "where table_schema = 'stage' and table_name = 'stg_sensor_readings' order by ordinal_position")
    assert cols[:4] == [("time", "timestamp with time zone"), ("device_id", "text"), ("measure_name", "text"),
                        ("value", "double precision")]
    # 47 good aq1 payloads x 7 measures, 2 good aq2 payloads x 7, plus the NaN payload's 5 good measures
    assert q(built, "select count(*) from stage.stg_sensor_readings")[0][0] == 47 * 7 + 2 * 7 + 5
    # the +02:00 offset and the epoch-seconds timestamps are normalised to UTC
    times = q(built, "select time from stage.stg_sensor_readings where device_id = 'aq2' and measure_name = 'iaq' "
                     "order by time")
    assert [t for (t,) in times] == [DAY + timedelta(hours=10), DAY + timedelta(hours=10, minutes=1)]
