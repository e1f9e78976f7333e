"""The warehouse build on a small scenario: stage contracts, rejects, gap filling, aggregates,
seed 001's analyses, consent rules, comments, idempotent re-runs and late data."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from dbt_support import DAY, FIRST_LOAD_AT, snapshot  # noqa: F401  (pytest puts this folder on sys.path)
from raw_fixture import RawWriter

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


def test_failing_rows_land_in_rejects_with_their_reason(built):
    reasons = {r for (r,) in q(built, "select distinct reject_reason from stage.stg_rejects")}
    assert {"not_a_number", "out_of_range", "unparseable_ts", "ts_in_future", "ts_before_2000", "unknown_device",
            "end_before_start", "quarantined_by_extract: readings_wrong_length"} <= reasons
    # the NaN payload lost only its iaq and humidity values; the rest of it is in stage
    nan_row = q(built, "select measure_name, reject_reason from stage.stg_rejects where source_table = 'raw.air_quality' "
                       "and reject_reason in ('not_a_number', 'out_of_range') order by 1")
    assert nan_row == [("humidity", "out_of_range"), ("iaq", "not_a_number")]
    assert q(built, "select count(*) from stage.stg_heart_rate where bpm > 250")[0][0] == 0


def test_iaq_minutely_interpolates_short_gaps_only(built):
    rows = dict((t.minute, (v, interp)) for t, v, interp in q(
        built, "select time, iaq, is_interpolated from stage.iaq_minutely where device_id = 'aq1' "
               "and time < %s order by time", DAY + timedelta(hours=11)))
    assert rows[20] == (120.0, True) and rows[22] == (122.0, True)     # 3 missing minutes: filled
    assert all(m not in rows for m in range(40, 50))                    # 10 missing minutes: left out
    assert rows[39] == (139.0, False) and len(rows) == 60 - 10


def test_dimensions(built):
    users = dict(q(built, "select user_id, age_group from stage.dim_users"))
    assert users == {"u_consent": "25-34", "u_never": "45-54", "u_early": "18-24"}
    owners = dict(q(built, "select device_id, owner_user_id from stage.dim_devices where kind = 'watch'"))
    assert owners == {"w1": "u_consent", "w2": "u_never", "w3": "u_early"}
    aq = q(built, "select location_description, last_calibrated_at is not null from stage.dim_devices "
                  "where device_id = 'aq1'")
    assert aq == [("kitchen", True)]


def test_daily_user_aggregates_split_sleep_at_midnight(built):
    rows = q(built, "select day, steps, sleep_minutes, avg_sleep_bpm, resting_bpm from agg.agg_user_daily "
                    "where user_id = 'u_consent' order by day")
    assert rows == [(DAY.date(), 1200, 90.0, 50.0, 60.0), ((DAY + timedelta(days=1)).date(), 0, 120.0, 50.0, 60.0)]
    weekly = q(built, "select steps, sleep_minutes, days_with_data from agg.agg_user_weekly where user_id = 'u_consent'")
    assert weekly == [(1200, 210.0, 2)]


def test_device_aggregates(built):
    row = q(built, "select min_value, max_value, reading_count, p95_value from agg.agg_device_daily "
                   "where device_id = 'aq1' and measure_name = 'iaq'")
    assert row[0][:3] == (100.0, 159.0, 47) and 150 < row[0][3] < 159
    monthly = q(built, "select reading_count from agg.agg_device_monthly where device_id = 'aq1' and measure_name = 'iaq'")
    assert monthly == [(47,)]
    hourly = q(built, "select sum(reading_count) from agg.agg_device_hourly where device_id = 'aq1' and measure_name = 'iaq'")
    assert hourly == [(47,)]
    latest = q(built, "select time, value from agg.agg_latest_reading where device_id = 'aq1' and measure_name = 'iaq'")
    assert latest == [(DAY + timedelta(hours=10, minutes=59), 159.0)]


def test_seed001_analyses_return_sensible_rows(built):
    by_age = q(built, "select age_group, user_count, avg_sleep_bpm, avg_step_count from agg.agg_monthly_health_by_age_group "
                      "order by age_group")
    assert by_age == [("18-24", 1, 50.0, 600.0), ("25-34", 1, 50.0, 600.0), ("45-54", 1, 50.0, 600.0)]
    # the past-month view ends today: the scenario's days are in it only while they are recent
    in_view = q(built, "select count(*) from agg.agg_user_daily_steps_past_month")[0][0]
    recent = q(built, "select count(*) from agg.agg_user_daily where day > current_date - 30")[0][0]
    assert in_view == recent


def rid(settings, user_id: str) -> str:
    """The research id curated keys a user by (a keyed hash: warehouse/init/03_privacy.sql)."""
    return q(settings, "select ops.research_id(%s)", user_id)[0][0]


def curated_users(settings) -> set[str]:
    return {r for (r,) in q(settings, "select distinct research_id from curated.curated_research_minutely")}


def test_curated_holds_only_consenting_users_after_consent_under_research_ids(built):
    assert curated_users(built) == {rid(built, "u_consent"), rid(built, "u_early")}
    first = q(built, "select min(minute) from curated.curated_research_minutely where research_id = %s",
              rid(built, "u_consent"))[0][0]
    assert first == DAY + timedelta(hours=12)
    assert q(built, "select count(*) from curated.curated_research_users where research_id = %s",
             rid(built, "u_never"))[0][0] == 0
    # no user id, e-mail or date of birth in any curated column
    columns = {c for (c,) in q(built, "select column_name from information_schema.columns where table_schema = 'curated'")}
    assert not columns & {"user_id", "email", "dob", "owner_user_id", "device_id"}
    assert len(rid(built, "u_consent")) == 64 and rid(built, "u_consent") != rid(built, "u_early")


def test_every_agg_table_and_column_has_a_database_comment(built):
    missing = q(built, """
        select c.relname, a.attname
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = 'agg' and c.relkind in ('r', 'v', 'm')
          and col_description(c.oid, a.attnum) is null""")
    assert missing == []
    tables = q(built, "select c.relname, obj_description(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                      "where n.nspname = 'agg' and c.relkind in ('r', 'v', 'm')")
    assert len(tables) >= 10 and all(desc for _, desc in tables)


def test_analyst_reads_agg_and_curated(built):
    with pg_connect("analyst", settings=built) as conn:
        assert conn.execute("select count(*) from agg.agg_user_daily").fetchone()[0] > 0
        assert conn.execute("select count(*) from curated.curated_research_minutely").fetchone()[0] > 0


def test_second_run_changes_nothing_then_late_data_updates_whole_periods(built):
    before = snapshot(built)
    build(settings=built)
    assert snapshot(built) == before

    # late data one day later: steps for DAY (already aggregated) and an aq1 reading inside the
    # 10-minute gap (old timestamp, new _ingested_at)
    later = FIRST_LOAD_AT + timedelta(days=1)
    with pg_connect("loader", settings=built) as conn:
        w = RawWriter(conn, load_id="load-2")
        w.bucket("steps", "st:w1:late", "w1", DAY + timedelta(hours=18), DAY + timedelta(hours=18, minutes=15),
                 [(DAY + timedelta(hours=18, minutes=i), 20) for i in range(15)], later)
        w.air_quality([("aq1", (DAY + timedelta(hours=10, minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        [145.0, 21.5, 45.0, 101.3, 0.5, 600.0, 3.0])], later)
    build(settings=built)
    assert q(built, "select steps from agg.agg_user_daily where user_id = 'u_consent' and day = %s", DAY.date()) == [(1500,)]
    assert q(built, "select steps from agg.agg_user_weekly where user_id = 'u_consent'") == [(1500,)]
    assert q(built, "select reading_count from agg.agg_device_daily where device_id = 'aq1' and measure_name = 'iaq'") \
        == [(48,)]
    # the late reading splits the 10-minute gap into 5 + 4 missing minutes: both now filled
    filled = q(built, "select count(*) from stage.iaq_minutely where device_id = 'aq1' and time >= %s and time < %s",
               DAY + timedelta(hours=10, minutes=40), DAY + timedelta(hours=10, minutes=50))
    assert filled == [(10,)]


def test_full_refresh_rebuilds_exactly_what_the_incremental_runs_built(built):
    # a full refresh takes the set-based paths (no `touched` sets, series-wise device stats);
    # after the increments and the late data above, both paths must agree on every table
    incremental = snapshot(built)
    build(full_refresh=True, settings=built)
    rebuilt = snapshot(built)
    assert {t for t in incremental if incremental[t] != rebuilt[t]} == set()
    assert incremental.keys() == rebuilt.keys()


def test_consent_changes_reach_curated_in_one_run(built):
    """A withdrawal removes every row of the user; a grant, or a consent moved earlier, brings the
    user's history from the consent on; a device that changes owner takes its data along."""
    def minutes(user_id):
        return q(built, "select count(*), min(minute) from curated.curated_research_minutely where research_id = %s",
                 rid(built, user_id))[0]

    def stage_minutes(device, since):
        return q(built, """select count(*), min(m) from (select distinct date_trunc('minute', time) as m from (
                               select time from stage.stg_heart_rate where device_id = %s and time >= %s
                               union all select time from stage.stg_steps where device_id = %s and time >= %s) t) m""",
                 device, since, device, since)[0]

    def change(sql):
        with pg_connect("superuser", settings=built) as conn:
            conn.execute(sql)
        build(select=["+curated_research_minutely"], settings=built)

    change("update raw.users set share_with_research_asof = null where user_id = 'u_early'")
    assert curated_users(built) == {rid(built, "u_consent")}
    change(f"update raw.users set share_with_research_asof = '{DAY.isoformat()}' where user_id = 'u_never'")
    assert minutes("u_never") == stage_minutes("w2", DAY) and minutes("u_never")[0] > 0
    before = minutes("u_consent")
    change(f"update raw.users set share_with_research_asof = '{(DAY - timedelta(days=3)).isoformat()}'"
           " where user_id = 'u_consent'")
    assert minutes("u_consent")[0] == stage_minutes("w1", DAY - timedelta(days=3))[0] > before[0]
    change("update raw.devices set owner_user_id = 'u_consent' where device_id = 'w2'")
    assert minutes("u_never") == (0, None)  # its only device left it
    assert minutes("u_consent")[0] == q(built, """select count(*) from (select distinct date_trunc('minute', time) from (
        select time from stage.stg_heart_rate where device_id in ('w1', 'w2') and time >= %s
        union all select time from stage.stg_steps where device_id in ('w1', 'w2') and time >= %s) t) m""",
        DAY - timedelta(days=3), DAY - timedelta(days=3))[0][0]
    # a run with no change changes nothing
    snap = snapshot(built, schemas=("curated",))
    build(select=["+curated_research_minutely"], settings=built)
    assert snapshot(built, schemas=("curated",)) == snap


def test_stage_reads_the_extracts_utc_time_and_has_no_timestamp_parser(built):
    """Device timestamps are parsed once, in Python (iot_core.timestamps, tests/iot_core): stage
    takes raw.air_quality.ts_utc and refuses a row without it."""
    rows = dict(q(built, "select r.ts, s.time::text from raw.air_quality as r join stage.stg_sensor_readings as s "
                         "on s.device_id = r.devid and s.time = r.ts_utc and s.measure_name = 'iaq' "
                         "where r.devid = 'aq2'"))
    assert rows == {"2026-11-20T12:00:00+02:00": "2026-11-20 10:00:00+00",
                    str(int((DAY + timedelta(hours=10, minutes=1)).timestamp())): "2026-11-20 10:01:00+00"}
    assert q(built, "select 1 from pg_proc where proname = 'parse_device_ts'") == []
    assert q(built, "select reject_reason from stage.stg_rejects where raw_value = 'yesterday at noon' limit 1") \
        == [("unparseable_ts",)]


HOURLY_COLUMNS = ["device_id", "measure_name", "hour", "min_value", "avg_value", "max_value", "reading_count",
                  "_ingested_at"]


def _timescaledb(settings) -> bool:
    return bool(q(settings, "select 1 from pg_extension where extname = 'timescaledb'"))


def _columns(settings, schema, table):
    return [c for (c,) in q(settings, "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 "
                                      "and not attisdropped order by attnum", f"{schema}.{table}")]


@pytest.mark.timescaledb
def test_time_series_models_are_hypertables_with_policies(built):
    if not _timescaledb(built):
        pytest.skip("TimescaleDB extension not installed in this PostgreSQL: the hypertable / continuous-aggregate "
                    "path is exercised only where it is (e.g. the timescale/timescaledb Docker image)")
    hypertables = {f"{s}.{t}" for s, t in q(built, "select hypertable_schema, hypertable_name "
                                                   "from timescaledb_information.hypertables")}
    assert {"stage.stg_sensor_readings", "stage.stg_heart_rate", "stage.stg_steps", "stage.iaq_minutely"} <= hypertables
    assert {f"agg.agg_{who}_{grain}" for who in ("device", "user") for grain in ("daily", "weekly", "monthly")} \
        <= hypertables
    compressed = {t for (t,) in q(built, "select hypertable_name from timescaledb_information.jobs "
                                         "where proc_name = 'policy_compression'")}
    assert "stg_sensor_readings" in compressed
    caggs = q(built, "select view_name from timescaledb_information.continuous_aggregates where view_schema = 'agg'")
    assert ("agg_device_hourly",) in caggs
    assert q(built, "select count(*) from timescaledb_information.jobs where proc_name = 'policy_refresh_continuous_aggregate'")[0][0] >= 1
    assert _columns(built, "agg", "agg_device_hourly") == HOURLY_COLUMNS


def test_without_timescaledb_the_same_models_are_plain_tables(built):
    if _timescaledb(built):
        pytest.skip("TimescaleDB is installed: the plain-PostgreSQL path is tested where it is absent")
    kinds = dict(q(built, "select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                          "where n.nspname in ('stage', 'agg') and c.relname in ('stg_sensor_readings', 'iaq_minutely', "
                          "'agg_device_hourly')"))
    assert kinds == {"stg_sensor_readings": "r", "iaq_minutely": "r", "agg_device_hourly": "r"}
    assert _columns(built, "agg", "agg_device_hourly") == HOURLY_COLUMNS
    assert _columns(built, "stage", "stg_sensor_readings") == ["time", "device_id", "measure_name", "value", "_ingested_at"]


def test_dbt_docs_generate_and_source_freshness(built):
    import json

    from dbt_project.runner import PROJECT_DIR, run_dbt

    assert run_dbt(["docs", "generate"], settings=built).success
    catalog = json.loads((PROJECT_DIR / "target" / "catalog.json").read_text())
    node = catalog["nodes"]["model.iot_warehouse.agg_user_daily"]
    assert node["metadata"]["comment"] and node["columns"]["steps"]["comment"]
    assert (PROJECT_DIR / "target" / "index.html").exists()
    # the scenario's raw rows were ingested long ago: freshness reports stale sources instead of crashing
    freshness = run_dbt(["source", "freshness", "--select", "source:raw.air_quality"], settings=built)
    assert freshness.statuses["source.iot_warehouse.raw.air_quality"] in ("warn", "error")


def test_time_series_models_are_registered_for_retention(built):
    """Every dbt run records the time-series models with their layer and time column
    (ops.warehouse_time_series), the list warehouse.retention works from."""
    registered = {r: (layer, column) for r, layer, column in
                  q(built, "select relation, layer, time_column from ops.warehouse_time_series")}
    assert registered["stage.stg_sensor_readings"] == ("stage", "time")
    assert registered["stage.iaq_minutely"] == ("stage", "time")
    assert registered["stage.stg_heart_rate"] == ("stage", "time")
    assert registered["agg.agg_device_hourly"] == ("agg", "hour")
    assert registered["agg.agg_device_daily"] == ("agg", "day_start")
    assert registered["agg.agg_user_daily"] == ("agg", "day")
    assert registered["agg.agg_user_monthly"] == ("agg", "month_start")
    assert all(layer in ("stage", "agg") for layer, _ in registered.values())


def test_a_device_registered_beside_its_first_readings_reaches_stage_in_an_air_quality_run(built):
    """A device registered a moment before its first readings: the extract's devices event may go
    to another stage run, or to none (a CLI or master-DAG extract announces nothing), so the stage
    run of the readings has only the air-quality selection. The stage checks read raw.devices
    while dim_devices was not rebuilt: the readings passed, and the relationship test to
    dim_devices failed the hot path's run (the freshness benchmark: 2,590 rows of its 5 probe
    devices). Now the checks read dim_devices and every stage selection builds it."""
    from orchestration.asset_events import stage_selection

    later = FIRST_LOAD_AT + timedelta(days=2)
    with pg_connect("superuser", settings=built) as conn:
        conn.execute("""insert into raw.devices select (jsonb_populate_record(null::raw.devices, to_jsonb(d)
                            || jsonb_build_object('_id', 'aq-new', 'device_id', 'aq-new', '_ingested_at', %s::text))).*
                        from raw.devices as d where d.device_id = 'aq1'""", (later.isoformat(),))
    with pg_connect("loader", settings=built) as conn:
        RawWriter(conn, load_id="load-new-device").air_quality(
            [("aq-new", (DAY + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ"), [90.0, 21.5, 45.0, 101.3, 0.5, 600.0, 3.0])],
            later)
    selection = stage_selection({"raw": [SimpleNamespace(extra={"table": "air_quality"})]})
    build(select=selection, settings=built)
    assert q(built, "select count(*) from stage.stg_sensor_readings where device_id = 'aq-new'") == [(7,)]
    assert q(built, "select kind from stage.dim_devices where device_id = 'aq-new'") == [("air_quality",)]
