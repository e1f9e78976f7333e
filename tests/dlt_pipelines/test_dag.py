"""The DAG iot_raw_extract run through Airflow (dag.test()) on the real servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factories as f


def test_dag_loads_raw_and_announces_the_assets_of_tables_with_new_rows(platform, fresh, raw, load_dag):
    now = f.ms(datetime.now(UTC))
    fresh.devices.insert_one(f.device("aq-1", ingested_at=now))
    fresh.air_quality.insert_many([f.air_quality("aq-1", f.BASE + timedelta(minutes=i), now) for i in range(10)])
    fresh.air_quality.insert_one({"_id": "aq:broken", "devid": "aq-1", "_ingested_at": now})

    dag = load_dag("iot_raw_extract")
    assert dag.max_active_runs == 1 and not dag.catchup and "extract" in dag.tags and dag.doc_md
    assert dag.default_args["retries"] >= 1 and dag.default_args["retry_exponential_backoff"]
    run = dag.test()

    assert run.state == "success"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {"extract": "success"}
    assert raw("select count(*) from raw.air_quality") == [(10,)]
    assert raw("select source_id, reason from raw.quarantine") == [("aq:broken", "missing_field: ts is missing")]
    # the stage transform is triggered by exactly the tables that got rows, and learns the loads
    announced = asset_events_of(run)
    assert set(announced) == {"raw.air_quality", "raw.devices", "raw.quarantine"}
    assert announced["raw.air_quality"]["rows"] == 10 and announced["raw.quarantine"]["rows"] == 1
    assert announced["raw.air_quality"]["load_ids"] == run.get_task_instance("extract").xcom_pull()["load_ids"] != []

    # nothing new in MongoDB: the next run loads nothing and announces nothing
    second = dag.test()
    assert second.state == "success" and asset_events_of(second) == {}
    assert raw("select count(*) from raw.air_quality") == [(10,)]


def asset_events_of(run) -> dict[str, dict]:
    """Asset name -> extra of the asset events a DAG run emitted (Airflow's metadata database)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetModel.name, AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id).all())
    return {name: extra for name, extra in rows}
