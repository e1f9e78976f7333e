"""The transform DAGs: real schedules, documented, and an end-to-end `iot_master_dag` run
(MongoDB -> dlt -> GX -> dbt stage / curated / agg through cosmos) that a second run leaves unchanged."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from dbt_support import TEST_DB, snapshot

from iot_core.connections import mongo_client, mongo_db, pg_connect
from iot_core.settings import get_settings

TRANSFORM_DAGS = ("iot_stage_transform", "iot_agg_transform_daily", "iot_agg_transform_weekly",
                  "iot_agg_transform_monthly", "iot_master_dag")


def test_aggregate_dags_are_really_scheduled(load_dag):
    expected = {"iot_agg_transform_daily": "30 0 * * *", "iot_agg_transform_weekly": "45 0 * * 1",
                "iot_agg_transform_monthly": "0 1 1 * *", "iot_master_dag": "0 * * * *"}
    for dag_id, cron in expected.items():
        timetable = load_dag(dag_id).timetable
        assert type(timetable).__name__ == "CronTriggerTimetable", dag_id
        expression = getattr(timetable, "expression", None) or getattr(timetable, "_expression", None)
        assert expression == cron, dag_id
    stage = load_dag("iot_stage_transform")
    assert stage.timetable.asset_condition is not None
    assert {a.name for a in stage.timetable.asset_condition.objects} >= {"raw.air_quality", "raw.users"}


def test_dags_are_documented_and_render_one_task_per_model_that_builds_and_tests_it(load_dag):
    for dag_id in TRANSFORM_DAGS:
        dag = load_dag(dag_id)
        assert dag.doc_md and dag.tags, dag_id
        for t in dag.tasks:
            assert t.owner == "data-platform" and t.retries >= 1 and t.on_failure_callback, (dag_id, t.task_id)
    # `dbt build` per model: the model, then its tests, in one task (not a task per test as well)
    ids = {t.task_id for t in load_dag("iot_agg_transform_daily").tasks}
    assert {"agg_daily.agg_user_daily_model_build", "agg_daily.agg_device_daily_model_build"} <= ids
    assert not [i for i in ids if i.endswith((".run", ".test"))]


@pytest.fixture
def master_env(platform, wh, tmp_path, monkeypatch):
    """Point the process settings at the isolated warehouse, a MongoDB database of its own and a
    dlt state directory of its own, with the generators' data in MongoDB."""
    from dbt_support import fresh_warehouse

    from generators import MongoWriter, backfill, build_fleet

    fresh_warehouse(wh)
    with pg_connect("loader", settings=wh, autocommit=True) as conn:  # the extract creates its own raw tables
        for (t,) in conn.execute("select tablename from pg_tables where schemaname = 'raw'").fetchall():
            conn.execute(f'drop table raw."{t}" cascade')
    monkeypatch.setenv("WAREHOUSE_DB", TEST_DB)
    monkeypatch.setenv("MONGO_DB", "iot_test_master_dag")
    monkeypatch.setenv("LOCAL_DIR", str(tmp_path))
    get_settings.cache_clear()
    settings = get_settings()
    client = mongo_client(settings)
    db = mongo_db(client, settings)
    client.drop_database(db.name)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
    fleet = build_fleet(users=4, sensors=2, seed=11, anchor=start - timedelta(days=60))
    backfill(MongoWriter(db), fleet, start, start + timedelta(hours=9), bad_rate=0.02, progress=False)
    yield settings, db
    client.drop_database(db.name)
    client.close()
    monkeypatch.undo()
    get_settings.cache_clear()
    os.environ.pop("DBT_PG_DBNAME", None)


@pytest.mark.slow  # two full DAG runs, one dbt invocation per model: about 4-12 minutes on a busy 2-core machine
def test_master_dag_fills_stage_agg_curated_and_a_second_run_changes_nothing(master_env, load_dag):
    settings, db = master_env
    dag = load_dag("iot_master_dag")
    run = dag.test()
    assert run.state == "success"

    with pg_connect("superuser", settings=settings) as conn:
        def one(sql):
            return conn.execute(sql).fetchone()[0]
        assert one("select count(*) from stage.stg_sensor_readings") > 1000
        assert one("select count(*) from stage.iaq_minutely") > 500
        assert one("select count(*) from agg.agg_user_daily") >= 4
        assert one("select count(*) from agg.agg_device_daily") >= 2 * 7
        assert one("select count(*) from agg.agg_monthly_health_by_age_group") >= 1
        assert one("select count(*) from agg.agg_user_daily_steps_past_month where steps > 0") >= 1
        assert one("select count(*) from ops.data_quality_results") > 0
        # nobody in curated without consent, nothing before the consent time
        assert one("""select count(*) from curated.curated_research_minutely c
                      left join stage.dim_users u on ops.research_id(u.user_id) = c.research_id
                      where u.share_with_research_asof is null
                         or c.minute < date_trunc('minute', u.share_with_research_asof)""") == 0
    consenting = {u["_id"] for u in db["users"].find({"share_with_research_asof": {"$ne": None}})}
    non_consenting = {u["_id"] for u in db["users"].find({"share_with_research_asof": None})}
    with pg_connect("superuser", settings=settings) as conn:
        def research_ids(users):
            return {conn.execute("select ops.research_id(%s)", (u,)).fetchone()[0] for u in users}

        in_curated = {r for (r,) in conn.execute("select distinct research_id from curated.curated_research_users")}
        assert in_curated == research_ids(consenting) and not (in_curated & research_ids(non_consenting))

    before = snapshot(settings)
    assert dag.test().state == "success"
    assert snapshot(settings) == before
