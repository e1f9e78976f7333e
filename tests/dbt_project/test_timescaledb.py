"""The production path on TimescaleDB, after compression and retention (issue 18's "done when").

Runs only where the test PostgreSQL has the TimescaleDB extension (``PG_BIN`` pointing at a
build that has it, e.g. a hand-built 2.28.3 against PostgreSQL 15; docs/warehouse.md); skipped
with that message elsewhere. Four days of readings of three air-quality sensors and one watch
(one chunk a day), ingested at once, then:

1. every chunk but the newest compressed, the decompression limit set to 1,000 tuples: an
   incremental stage run with a new minute passes (it decompressed all history before);
2. a late reading into a compressed chunk lands in stage, and in the hourly continuous aggregate
   at the next agg run (outside its refresh policy's window);
3. the continuous aggregate holds exactly the rows the plain-PostgreSQL path builds (same data,
   built with DBT_TIMESCALEDB=false in a database of its own);
4. retention drops the oldest stage chunks and the aggregates keep their rows, also after the next
   agg run; a --full-refresh of an aggregate is refused then;
5. the erasure of a user leaves nothing, also in compressed chunks;
6. a failing background job is recorded in ops.timescaledb_job_errors;
7. the stage checks of a new minute plan no compressed chunk of the readings, nor those of a new
   watch bucket any compressed chunk of the heart rates and steps.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from dbt_support import fresh_warehouse
from raw_fixture import RawWriter

from dbt_project.runner import run_dbt
from iot_core.connections import pg_connect

pytestmark = pytest.mark.timescaledb

# relative to today, so retention (now - N days) meets the data the same way on any day
BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=40)
KEEP_STAGE_DAYS = 39  # the first of the four days ends more than 39 days ago (settings allow >= 32)
DAYS = 4
LOADED_AT = BASE + timedelta(days=DAYS, hours=1)
SENSORS = ("aq1", "aq2", "aq3")
PLAIN_DB = "iot_warehouse_dbt_plain"
# the newest minute of the stage-checks test
SECOND_NEW_MINUTE = BASE + timedelta(days=DAYS - 1, hours=23, minutes=57)
STAGE_HYPERTABLES = ("stg_sensor_readings", "iaq_minutely", "stg_heart_rate", "stg_steps")


def q(settings, sql, *params, database=None):
    with pg_connect("superuser", settings=settings, database=database) as conn:
        return conn.execute(sql, params).fetchall()


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _readings(t: datetime, device_index: int) -> list[float]:
    minute = int((t - BASE).total_seconds() // 60)
    return [50.0 + (minute % 97) + device_index, 21.0, 45.0, 101.3, 0.5, 600.0 + minute % 13, 3.0]


def load_history(settings) -> None:
    """Four days: each sensor every 10 minutes, the watch's heart rate every 10 minutes."""
    with pg_connect("loader", settings=settings) as conn:
        w = RawWriter(conn, load_id="history")
        w.user("u1", 40, ["w1"], LOADED_AT, research_asof=None)
        w.device("w1", "watch", LOADED_AT, owner_user_id="u1")
        for dev in SENSORS:
            w.device(dev, "air_quality", LOADED_AT, location="lab")
        rows = []
        for i, dev in enumerate(SENSORS):
            for k in range(DAYS * 144):
                t = BASE + timedelta(minutes=10 * k)
                rows.append((dev, _ts(t), _readings(t, i)))
        w.air_quality(rows, LOADED_AT)
        for b in range(DAYS * 6):
            start = BASE + timedelta(hours=4 * b)
            w.bucket("heart_rates", f"hr:w1:{b}", "w1", start, start + timedelta(hours=4),
                     [(start + timedelta(minutes=10 * i), 60.0 + i % 5, 3.0) for i in range(24)], LOADED_AT)
            w.bucket("steps", f"st:w1:{b}", "w1", start, start + timedelta(hours=4),
                     [(start + timedelta(minutes=10 * i), 10) for i in range(24)], LOADED_AT)


def add_readings(settings, payloads: list[tuple[str, datetime]], ingested_at: datetime, load_id: str) -> None:
    with pg_connect("loader", settings=settings) as conn:
        w = RawWriter(conn, load_id=load_id)
        w.air_quality([(dev, _ts(t), _readings(t, SENSORS.index(dev))) for dev, t in payloads], ingested_at)


def _database(services, name: str):
    """A warehouse database of its own (same init SQL and grants as the real one)."""
    from iot_cli.localstack.postgres import INIT_SQL_DIR, init_sql_variables

    settings = services.model_copy(update={"warehouse_db": name})
    with pg_connect("superuser", database="postgres", autocommit=True, settings=services) as conn:
        conn.execute(f"drop database if exists {name} with (force)")
        conn.execute(f"create database {name}")
        conn.execute(f"revoke create, temporary on database {name} from public")
        conn.execute(f"grant connect on database {name} to {settings.loader_user}, {settings.transformer_user}, "
                     f"{settings.analyst_user}, {settings.api_user}")
        conn.execute(f"grant temporary on database {name} to {settings.transformer_user}")
    return settings, INIT_SQL_DIR, init_sql_variables(settings)


@pytest.fixture(scope="module")
def ts(wh, pg_cluster):
    """The scenario built on TimescaleDB (the test database has the extension when the server does)."""
    if not q(wh, "select 1 from pg_extension where extname = 'timescaledb'"):
        pytest.skip("TimescaleDB extension not installed in this PostgreSQL: run these tests with PG_BIN "
                    "pointing at a PostgreSQL 15 whose pkglibdir holds a TimescaleDB 2.28.3 build "
                    "(docs/warehouse.md, testing the TimescaleDB path)")
    fresh_warehouse(wh)
    load_history(wh)
    assert run_dbt(["build"], settings=wh).success
    return wh


@pytest.fixture(scope="module")
def plain(services, pg_cluster):
    """The plain-PostgreSQL path (DBT_TIMESCALEDB=false) in a database without the extension."""
    settings, init_dir, variables = _database(services, PLAIN_DB)
    pg_cluster.psql_file(init_dir / "02_warehouse_schemas.sql", PLAIN_DB, variables)
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        conn.execute("drop extension if exists timescaledb cascade")
    fresh_warehouse(settings)
    return settings


def _compress_all_but_newest(settings, tables=STAGE_HYPERTABLES, keep_newest=True) -> None:
    """The compression policies have compressed chunks already (the data is weeks old): every
    chunk but the newest ends up compressed, the newest not."""
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        for t in tables:
            chunks = conn.execute(
                "select format('%%I.%%I', chunk_schema, chunk_name), is_compressed "
                "from timescaledb_information.chunks "
                "where hypertable_schema = 'stage' and hypertable_name = %s order by range_end", (t,)).fetchall()
            for chunk, is_compressed in chunks[:-1] if keep_newest else chunks:
                if not is_compressed:
                    conn.execute("select compress_chunk(%s::regclass)", (chunk,))
            if keep_newest and chunks and chunks[-1][1]:
                conn.execute("select decompress_chunk(%s::regclass)", (chunks[-1][0],))


def _chunks(settings, table: str) -> tuple[int, int]:
    """(chunks, compressed chunks) of a stage hypertable."""
    return tuple(q(settings, "select count(*), count(*) filter (where is_compressed) "
                             "from timescaledb_information.chunks where hypertable_schema = 'stage' "
                             "and hypertable_name = %s", table)[0])


def _set_decompression_limit(settings, limit: int | None) -> None:
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        if limit is None:
            conn.execute(f"alter database {settings.warehouse_db} reset "
                         "timescaledb.max_tuples_decompressed_per_dml_transaction")
        else:
            conn.execute(f"alter database {settings.warehouse_db} set "
                         f"timescaledb.max_tuples_decompressed_per_dml_transaction = {limit}")


def test_the_continuous_aggregate_is_filled_over_the_whole_history_when_created(ts):
    """The build waited for the refresh policy's first run: every hour of the four days (weeks
    old, far outside any recent window) is materialized, none computed at query time."""
    materialization = f"_timescaledb_internal._materialized_hypertable_{_materialization_id(ts)}"
    assert q(ts, f"select count(*) from {materialization}")[0][0] == len(SENSORS) * 7 * DAYS * 24
    assert q(ts, "select config ->> 'start_offset' from timescaledb_information.jobs "
                 "where proc_name = 'policy_refresh_continuous_aggregate'") == [(None,)]  # the whole history


def test_a_rerun_of_the_continuous_aggregate_keeps_its_refresh_policy(ts):
    """The policy is replaced only when it differs: a run with the same settings leaves the job,
    its id and its history alone. TimescaleDB 2.20 and later name a continuous aggregate's policy
    hypertable by the view; matched only by the materialization hypertable, the policy was never
    found, so every run replaced it (and the first build never waited for the first fill)."""
    def refresh_jobs():
        return q(ts, "select job_id from timescaledb_information.jobs "
                     "where proc_name = 'policy_refresh_continuous_aggregate' order by job_id")

    before = refresh_jobs()
    assert len(before) == 1
    result = run_dbt(["run", "--select", "agg_device_hourly"], settings=ts)
    assert result.success, result.failed_nodes() or result.exception
    assert refresh_jobs() == before


def test_incremental_stage_run_after_compression_decompresses_nothing_it_does_not_write(ts):
    _compress_all_but_newest(ts)
    assert _chunks(ts, "stg_sensor_readings") == (DAYS, DAYS - 1)  # one chunk a day, all but the newest compressed
    assert _chunks(ts, "iaq_minutely") == (DAYS, DAYS - 1)
    newest_minute = BASE + timedelta(days=DAYS - 1, hours=23, minutes=55)
    add_readings(ts, [(dev, newest_minute) for dev in SENSORS], LOADED_AT + timedelta(days=1), "new-minute")
    _set_decompression_limit(ts, 1000)
    try:
        result = run_dbt(["run", "--select", "tag:stage"], settings=ts)
    finally:
        _set_decompression_limit(ts, None)
    assert result.success, result.failed_nodes() or result.exception
    assert q(ts, "select count(*) from stage.stg_sensor_readings where time = %s", newest_minute)[0][0] == 3 * 7
    # the history is still compressed (and not partially: nothing was decompressed into it)
    assert _chunks(ts, "stg_sensor_readings") == (DAYS, DAYS - 1)
    assert not q(ts, "select 1 from timescaledb_information.chunks c join _timescaledb_catalog.chunk k "
                     "on k.table_name = c.chunk_name and k.schema_name = c.chunk_schema "
                     "where c.hypertable_name = 'stg_sensor_readings' and c.is_compressed and k.status & 8 = 8")


def test_a_late_reading_into_a_compressed_chunk_lands_in_stage_and_the_aggregate(ts):
    late = BASE + timedelta(days=1, hours=12, minutes=5)  # between two readings of a compressed day
    hour = late.replace(minute=0)
    before = q(ts, "select reading_count from agg.agg_device_hourly where device_id = 'aq2' "
                   "and measure_name = 'iaq' and hour = %s", hour)[0][0]
    add_readings(ts, [("aq2", late)], LOADED_AT + timedelta(days=1, hours=1), "late")
    _set_decompression_limit(ts, 1000)  # the late reading needs one batch of its device, not the chunk
    try:
        result = run_dbt(["run", "--select", "tag:stage"], settings=ts)
    finally:
        _set_decompression_limit(ts, None)
    assert result.success, result.failed_nodes() or result.exception
    assert q(ts, "select count(*) from stage.stg_sensor_readings where device_id = 'aq2' and time = %s", late)[0][0] == 7
    assert q(ts, "select count(*) from stage.iaq_minutely where device_id = 'aq2' and time = %s", late)[0][0] == 1
    # weeks old, yet inside the refresh policy's window (the whole history): its next run has it
    assert _run_policy_jobs(ts, "policy_refresh_continuous_aggregate") == 1
    assert q(ts, "select reading_count from agg.agg_device_hourly where device_id = 'aq2' "
                 "and measure_name = 'iaq' and hour = %s", hour)[0][0] == before + 1
    # and it is materialized, not computed from stage at query time (real-time part)
    materialization = f"_timescaledb_internal._materialized_hypertable_{_materialization_id(ts)}"
    assert q(ts, f"select count(*) from {materialization} where hour = %s", hour)[0][0] > 0


def _materialization_id(settings) -> int:
    return q(settings, "select h.id from _timescaledb_catalog.hypertable as h "
                       "join timescaledb_information.continuous_aggregates as c "
                       "on c.materialization_hypertable_name = h.table_name "
                       "where c.view_name = 'agg_device_hourly'")[0][0]


def _ordered(settings, relation: str, columns: str) -> list[tuple]:
    return q(settings, f"select {columns} from {relation} order by {columns}")


def test_continuous_aggregate_equals_the_plain_path(ts, plain):
    """Same raw data (history, new minute, late reading) through both paths."""
    load_history(plain)
    newest_minute = BASE + timedelta(days=DAYS - 1, hours=23, minutes=55)
    add_readings(plain, [(dev, newest_minute) for dev in SENSORS], LOADED_AT + timedelta(days=1), "new-minute")
    add_readings(plain, [("aq2", BASE + timedelta(days=1, hours=12, minutes=5))],
                 LOADED_AT + timedelta(days=1, hours=1), "late")
    assert run_dbt(["build"], settings=plain, timescaledb=False).success
    assert run_dbt(["run", "--select", "tag:daily"], settings=ts).success
    _run_policy_jobs(ts, "policy_refresh_continuous_aggregate")
    kinds = dict(q(plain, "select relname, relkind::text from pg_class where relname in ('agg_device_hourly', "
                          "'stg_sensor_readings')"))
    assert kinds == {"agg_device_hourly": "r", "stg_sensor_readings": "r"}
    hourly = "device_id, measure_name, hour, min_value, avg_value, max_value, reading_count, _ingested_at"
    ts_rows, plain_rows = _ordered(ts, "agg.agg_device_hourly", hourly), _ordered(plain, "agg.agg_device_hourly", hourly)
    assert len(ts_rows) == len(plain_rows) == len(SENSORS) * 7 * DAYS * 24
    assert ts_rows == plain_rows
    daily = "device_id, measure_name, day_start, min_value, avg_value, max_value, p95_value, reading_count"
    assert _ordered(ts, "agg.agg_device_daily", daily) == _ordered(plain, "agg.agg_device_daily", daily)
    assert _ordered(ts, "stage.stg_sensor_readings", "time, device_id, measure_name, value") == \
        _ordered(plain, "stage.stg_sensor_readings", "time, device_id, measure_name, value")


def test_a_table_built_before_its_model_became_a_hypertable_still_merges(ts):
    """An agg table of an older deployment is a plain table although its model now says
    hypertable: its incremental runs take the plain delete+insert (the bounded one would find no
    chunks, delete nothing and insert duplicates)."""
    with pg_connect("transformer", settings=ts, autocommit=True) as conn:
        conn.execute("create table agg.weekly_plain as select * from agg.agg_device_weekly")
        conn.execute("drop table agg.agg_device_weekly")
        conn.execute("alter table agg.weekly_plain rename to agg_device_weekly")
        conn.execute("create unique index on agg.agg_device_weekly (device_id, measure_name, week_start)")
    rows = q(ts, "select count(*) from agg.agg_device_weekly")[0][0]
    reading = BASE + timedelta(days=DAYS - 1, hours=22, minutes=35)
    add_readings(ts, [("aq3", reading)], LOADED_AT + timedelta(days=2), "upgrade")
    assert run_dbt(["run", "--select", "tag:stage", "agg_device_weekly"], settings=ts).success
    assert q(ts, "select count(*) from agg.agg_device_weekly")[0][0] == rows
    assert not q(ts, "select 1 from timescaledb_information.hypertables where hypertable_name = 'agg_device_weekly'")
    assert q(ts, "select sum(reading_count) from agg.agg_device_weekly where device_id = 'aq3' and measure_name = 'iaq'")[0][0] \
        == q(ts, "select count(*) from stage.stg_sensor_readings where device_id = 'aq3' and measure_name = 'iaq'")[0][0]


def _run_policy_jobs(settings, *proc_names: str) -> int:
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        jobs = [j for (j,) in conn.execute("select job_id from timescaledb_information.jobs "
                                           "where proc_name = any(%s) order by job_id", (list(proc_names),))]
        for job in jobs:
            conn.execute("call run_job(%s)", (job,))
    return len(jobs)


def test_retention_drops_old_chunks_and_the_aggregates_keep_their_rows(ts):
    from warehouse.retention import apply_retention

    counts = {t: q(ts, f"select count(*) from agg.{t}")[0][0]
              for t in ("agg_device_hourly", "agg_device_daily", "agg_user_daily")}
    assert all(counts.values())
    settings = ts.model_copy(update={"retention_stage_days": KEEP_STAGE_DAYS})
    actions = {a.relation: a.action for a in apply_retention(settings, progress=False)}
    assert actions["stage.stg_sensor_readings"] == "policy set"
    assert actions["agg.agg_device_hourly"] == "kept"            # agg: kept by default
    assert {a.action for a in apply_retention(settings, progress=False)
            if a.layer == "stage"} == {"policy unchanged"}       # idempotent
    # stg_sensor_readings carries the continuous aggregate: its own job drops chunks without invalidating it
    assert q(ts, "select count(*) from timescaledb_information.jobs where proc_name = 'drop_chunks_keeping_aggregates' "
                 "and config ->> 'relation' = 'stage.stg_sensor_readings'")[0][0] == 1
    assert _run_policy_jobs(ts, "policy_retention", "drop_chunks_keeping_aggregates") >= len(STAGE_HYPERTABLES)
    oldest = q(ts, "select min(time) from stage.stg_sensor_readings")[0][0]
    assert oldest >= BASE + timedelta(days=1)
    assert q(ts, "select count(*) from timescaledb_information.chunks where hypertable_schema = 'stage' "
                 "and range_end < now() - make_interval(days => %s)", KEEP_STAGE_DAYS)[0][0] == 0
    after = {t: q(ts, f"select count(*) from agg.{t}")[0][0] for t in counts}
    assert after == counts
    # the next agg run moves the refresh policy's window behind the retention horizon; its runs
    # refresh everything but the dropped region: the old periods stay
    assert run_dbt(["run", "--select", "tag:daily"], settings=settings).success
    assert q(ts, "select config ->> 'start_offset' from timescaledb_information.jobs "
                 "where proc_name = 'policy_refresh_continuous_aggregate'")[0][0] == f"{KEEP_STAGE_DAYS - 1} days"
    _run_policy_jobs(ts, "policy_refresh_continuous_aggregate")
    # (known limit, docs/warehouse.md: the one hour the too-late reading touched is open again
    # without a horizon and is recomputed from the one reading stage holds of it)
    assert q(ts, "select count(*) from agg.agg_device_hourly where hour < %s and hour <> %s",
             BASE + timedelta(days=1), BASE + timedelta(hours=12))[0][0] == len(SENSORS) * 7 * 23
    assert q(ts, "select count(*) from agg.agg_device_daily")[0][0] == counts["agg_device_daily"]
    # a late reading for a day retention dropped: the day's aggregates are final, not shrunk to it
    day_before = q(ts, "select reading_count from agg.agg_device_daily where device_id = 'aq1' "
                       "and measure_name = 'iaq' and day_start = %s", BASE.date())[0][0]
    assert day_before == 144
    add_readings(ts, [("aq1", BASE + timedelta(hours=12, minutes=5))], LOADED_AT + timedelta(days=3), "too-late")
    assert run_dbt(["run", "--select", "tag:stage", "tag:daily"], settings=settings).success
    _run_policy_jobs(ts, "policy_refresh_continuous_aggregate")
    assert q(ts, "select reading_count from agg.agg_device_daily where device_id = 'aq1' "
                 "and measure_name = 'iaq' and day_start = %s", BASE.date())[0][0] == day_before
    assert {t: q(ts, f"select count(*) from agg.{t}")[0][0] for t in counts} == counts
    assert q(ts, "select count(*) from agg.agg_device_hourly where hour < %s", BASE + timedelta(days=1))[0][0] \
        == len(SENSORS) * 7 * 24
    # a full refresh would rebuild from the shortened stage: refused with the reason
    refused = run_dbt(["run", "--select", "agg_device_hourly", "agg_device_daily", "--full-refresh"],
                      settings=settings)
    assert not refused.success and set(refused.failed_nodes()) == {
        "model.iot_warehouse.agg_device_hourly", "model.iot_warehouse.agg_device_daily"}
    assert {t: q(ts, f"select count(*) from agg.{t}")[0][0] for t in counts} == counts
    # the setting removed again: the policy covers the whole history again, and still the dropped
    # periods stay (their drop was not recorded as an invalidation)
    assert run_dbt(["run", "--select", "agg_device_hourly"], settings=ts).success
    assert q(ts, "select config ->> 'start_offset' from timescaledb_information.jobs "
                 "where proc_name = 'policy_refresh_continuous_aggregate'")[0][0] is None
    _run_policy_jobs(ts, "policy_refresh_continuous_aggregate")
    # (known limit, docs/warehouse.md: the one hour the too-late reading touched is open again
    # without a horizon and is recomputed from the one reading stage holds of it)
    assert q(ts, "select count(*) from agg.agg_device_hourly where hour < %s and hour <> %s",
             BASE + timedelta(days=1), BASE + timedelta(hours=12))[0][0] == len(SENSORS) * 7 * 23
    assert q(ts, "select count(*) from agg.agg_device_daily")[0][0] == counts["agg_device_daily"]


def test_erasure_leaves_nothing_also_in_compressed_chunks(ts, mongo_server):
    from privacy import erase_user

    old_periods = "select count(*) from agg.agg_device_hourly where hour < %s"
    sensors_before = q(ts, old_periods, BASE + timedelta(days=1))[0][0]
    assert sensors_before > 0
    _compress_all_but_newest(ts, tables=("stg_heart_rate", "stg_steps"), keep_newest=False)
    with pg_connect("superuser", settings=ts, autocommit=True) as conn:
        for (chunk,) in conn.execute("select format('%I.%I', chunk_schema, chunk_name) "
                                     "from timescaledb_information.chunks where hypertable_schema = 'agg' "
                                     "and hypertable_name = 'agg_user_daily' and not is_compressed").fetchall():
            conn.execute("select compress_chunk(%s::regclass)", (chunk,))
    assert q(ts, "select count(*) from stage.stg_heart_rate where device_id = 'w1'")[0][0] > 0
    assert q(ts, "select count(*) from timescaledb_information.chunks where hypertable_name = 'stg_heart_rate' "
                 "and is_compressed")[0][0] >= 1
    # the settings of the deployment (retention as set in the retention test)
    erase_user("u1", settings=ts.model_copy(update={"retention_stage_days": KEEP_STAGE_DAYS}), progress=False)
    for relation, column, value in (("stage.stg_heart_rate", "device_id", "w1"), ("stage.stg_steps", "device_id", "w1"),
                                    ("agg.agg_user_daily", "user_id", "u1"), ("agg.agg_user_weekly", "user_id", "u1"),
                                    ("stage.dim_users", "user_id", "u1"), ("raw.heart_rates", "device_id", "w1")):
        assert q(ts, f"select count(*) from {relation} where {column} = %s", value)[0][0] == 0, relation
    # the sensors' aggregates are untouched by the watch owner's erasure, also the periods whose
    # source chunks retention dropped (the erasure refreshes only what stage still holds)
    assert q(ts, old_periods, BASE + timedelta(days=1))[0][0] == sensors_before


def test_policy_jobs_run_and_a_failing_job_is_recorded_in_ops(ts):
    from warehouse.job_health import record_job_errors

    assert _run_policy_jobs(ts, "policy_compression") >= 1
    health = record_job_errors(ts)
    assert health.timescaledb and health.jobs >= 1
    with pg_connect("transformer", settings=ts, autocommit=True) as conn:
        conn.execute("create or replace procedure ops.test_failing_job(job_id int, config jsonb) "
                     "language plpgsql as $$ begin raise exception 'boom from the test job'; end $$")
        job = conn.execute("select add_job('ops.test_failing_job', '1 hour', initial_start => now())").fetchone()[0]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with pg_connect("transformer", settings=ts, autocommit=True) as conn:
                if conn.execute("select 1 from timescaledb_information.job_errors where job_id = %s "
                                "and finish_time is not null", (job,)).fetchone():
                    break
            time.sleep(2)
        else:
            pytest.fail("the background scheduler did not run the failing job within 90 s")
        health = record_job_errors(ts)
        assert not health.healthy and health.failures >= 1
        assert "boom from the test job" in (health.last_error or "") and "boom" in health.summary()
        assert q(ts, "select count(*) from ops.timescaledb_job_errors where job_id = %s", job)[0][0] >= 1
        again = record_job_errors(ts)
        assert again.recorded == 0  # idempotent: each failed execution is recorded once
    finally:
        with pg_connect("transformer", settings=ts, autocommit=True) as conn:
            conn.execute("select delete_job(%s)", (job,))
            conn.execute("delete from ops.timescaledb_job_errors where job_id = %s", (job,))


def _compressed_chunks_planned(settings, model: str, tmp_path, hypertables=("stg_sensor_readings",)) -> list[str]:
    """The compressed chunks of the stage ``hypertables`` the plan of ``model``'s compiled
    incremental SELECT may read
    (DecompressChunk nodes, ColumnarScan in newer releases). Chunks excluded by constant bounds
    are not in the plan at all; one excluded only at run time depends on the plan chosen."""
    result = run_dbt(["compile", "--select", model, "--target-path", str(tmp_path)], settings=settings)
    assert result.success, result.failed_nodes()
    sql = next(tmp_path.glob(f"compiled/**/{model}.sql")).read_text()
    with pg_connect("transformer", settings=settings) as conn:
        plan = conn.execute("explain (format json) " + sql).fetchone()[0]
        conn.rollback()  # nothing of the compile's bookkeeping is kept
    planned = []

    def walk(node):
        if node.get("Custom Plan Provider") in ("DecompressChunk", "ColumnarScan"):  # renamed in 2.2x
            planned.append(str(node.get("Relation Name") or node.get("Alias")))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    of_readings = {name for (name,) in q(settings, "select chunk_name from timescaledb_information.chunks "
                                                   "where hypertable_schema = 'stage' "
                                                   "and hypertable_name = any(%s)", list(hypertables))}
    return [name for name in planned if name in of_readings]


def test_the_stage_checks_read_no_compressed_history_for_a_new_minute(ts, tmp_path):
    """The anti-join of stg_sensor_readings (first delivery wins) and stg_rejects' join to the kept
    values (conflicting re-sends) matched on `time` with no constant bound, so every compressed
    chunk of history was decompressed and scanned for one new minute (stg_rejects once took 29 s
    instead of 0.5 s). Bounded by the batch's time range as constants, their plans hold none.
    (The wearables' counterpart is the next test.)"""
    _compress_all_but_newest(ts)
    # last in this module: its readings are ingested after every other test's (a model's cursor
    # is its newest ingestion time). A run for one minute first, so the look-back (by ingestion
    # time) no longer reaches the history, ingested at once; then the next minute, as the hot
    # path sees it
    first, second = SECOND_NEW_MINUTE - timedelta(minutes=1), SECOND_NEW_MINUTE
    add_readings(ts, [(dev, first) for dev in SENSORS], LOADED_AT + timedelta(days=4), "minute-before")
    assert run_dbt(["run", "--select", "tag:stage"], settings=ts).success
    add_readings(ts, [(dev, second) for dev in SENSORS], LOADED_AT + timedelta(days=5), "second-minute")
    for model in ("stg_sensor_readings", "stg_rejects"):
        assert _compressed_chunks_planned(ts, model, tmp_path / model) == [], model


def test_the_wearable_checks_read_no_compressed_history_for_a_new_bucket(ts, tmp_path):
    """The same for heart rates and steps: the anti-joins of stg_heart_rate and stg_steps and
    stg_rejects' joins to their kept samples matched on `time` alone, so once the watch's chunks
    were compressed (after 30 days) every stage run planned all of them. After the readings' test:
    its buckets are ingested later than anything before (the models' cursors)."""
    def buckets(label: str, start: datetime, ingested_at: datetime) -> None:
        with pg_connect("loader", settings=ts) as conn:
            w = RawWriter(conn, load_id=f"watch-{label}")
            if label == "week-after":  # a watch of its own: the erasure test removed w1 with its owner
                w.user("u2", 35, ["w2"], ingested_at, research_asof=None)
                w.device("w2", "watch", ingested_at, owner_user_id="u2")
            w.bucket("heart_rates", f"hr:w2:{label}", "w2", start, start + timedelta(hours=1),
                     [(start + timedelta(minutes=10 * i), 65.0, 3.0) for i in range(6)], ingested_at)
            w.bucket("steps", f"st:w2:{label}", "w2", start, start + timedelta(hours=1),
                     [(start + timedelta(minutes=10 * i), 8) for i in range(6)], ingested_at)

    # as the hot path sees it: a bucket of a later week (so the look-back, which re-reads the last
    # hour of ingestion, no longer reaches the history, ingested at once), every older chunk
    # compressed, then the next bucket
    newest = BASE + timedelta(days=DAYS + 8)  # another 7-day chunk than the history's
    buckets("week-after", newest - timedelta(hours=2), newest)
    assert run_dbt(["run", "--select", "tag:stage"], settings=ts).success
    _compress_all_but_newest(ts, tables=("stg_heart_rate", "stg_steps"))
    for table in ("stg_heart_rate", "stg_steps"):
        assert _chunks(ts, table)[1] >= 1, f"{table}: no compressed chunk, the test would prove nothing"
    buckets("next", newest, newest + timedelta(hours=2))
    for model in ("stg_heart_rate", "stg_steps", "stg_rejects"):
        planned = _compressed_chunks_planned(ts, model, tmp_path / model, ("stg_heart_rate", "stg_steps"))
        assert planned == [], (model, q(ts, "select chunk_name, range_start, range_end from "
                                            "timescaledb_information.chunks where chunk_name = any(%s)", planned))
    assert run_dbt(["run", "--select", "tag:stage"], settings=ts).success
    for table in ("stg_heart_rate", "stg_steps"):
        assert q(ts, f"select count(*) from stage.{table} where time >= %s and time < %s",
                 newest - timedelta(hours=2), newest - timedelta(hours=1))[0][0] == 6, table
        assert q(ts, f"select count(*) from stage.{table} where time >= %s and time < %s",
                 newest, newest + timedelta(hours=1))[0][0] == 6, (table, q(
            ts, f"select min(time), max(time), count(*), max(_ingested_at) from stage.{table} where time > %s",
            newest - timedelta(days=3)), q(ts, "select reject_reason, count(*), min(time) from stage.stg_rejects "
                                               "where time > %s group by 1", newest - timedelta(days=3)))
