"""The DAG iot_raw_extract run through Airflow (dag.test()) on the real servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factories as f


def test_dag_loads_raw_and_publishes_assets_of_tables_with_new_rows(platform, fresh, raw, load_dag):
    now = f.ms(datetime.now(UTC))
    fresh.devices.insert_one(f.device("aq-1", ingested_at=now))
    fresh.air_quality.insert_many([f.air_quality("aq-1", f.BASE + timedelta(minutes=i), now) for i in range(10)])
    fresh.air_quality.insert_one({"_id": "aq:broken", "devid": "aq-1", "_ingested_at": now})

    dag = load_dag("iot_raw_extract")
    assert dag.max_active_runs == 1 and not dag.catchup and "extract" in dag.tags and dag.doc_md
    assert dag.default_args["retries"] >= 1 and dag.default_args["retry_exponential_backoff"]
    run = dag.test()

    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["extract"] == "success"
    assert states["publish_air_quality"] == "success" and states["publish_quarantine"] == "success"
    assert states["publish_steps"] == "skipped"
    assert raw("select count(*) from raw.air_quality") == [(10,)]
    assert raw("select source_id, reason from raw.quarantine") == [("aq:broken", "missing_field: ts is missing")]
