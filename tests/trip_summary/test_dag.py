"""trip_summary_daily runs end to end through Airflow (dag.test) and maps one task per device shard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trips.config import load_config
from trips.lake import Lake
from trips.summary import Options, summarise_day

from .conftest import DAY1

pytestmark = pytest.mark.timeout(600)


def test_dag_summarises_the_logical_day_in_shards(platform, load_dag, edge_lake):
    root, config_path = edge_lake
    dag = load_dag("trip_summary_daily")
    assert dag.tags and dag.doc_md and dag.default_args["retries"] > 0
    run = dag.test(logical_date=datetime(2026, 11, 20, tzinfo=UTC),
                   run_conf={"config": str(config_path), "root": str(root), "shard_size": 2})
    assert run.state == "success"

    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "summarise_shard"]
    assert len(mapped) == 3 and all(ti.state == "success" for ti in mapped)   # 6 devices / 2 per shard
    lake = Lake(root)
    written = lake.read_table(lake.output_relpath(DAY1))
    # shards of 2 devices write exactly what the CLI writes with slices of 2 devices (TRIPS_SHARD_SIZE=2)
    sliced_alike = summarise_day(lake, load_config(config_path), DAY1, options=Options(slice_devices=2))
    assert written.num_rows > 0 and written.equals(sliced_alike)
    staging = root / "aggregations" / "_staging" / "tripsummary" / "20261120"
    assert not staging.exists() or not any(staging.iterdir())


def test_a_malformed_configuration_fails_the_run_at_once_with_its_reason(platform, load_dag, edge_lake, tmp_path):
    root, _ = edge_lake
    bad = tmp_path / "aggregations.json"
    bad.write_text('{"device_clusters": [{"cluster": "c1", "devices": ["D1"]}], "cluster_details": []}')
    dag = load_dag("trip_summary_daily")
    run = dag.test(logical_date=datetime(2026, 11, 20, tzinfo=UTC), run_conf={"config": str(bad), "root": str(root)})
    assert run.state == "failed"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan")
    # failed, not up for retry: no retry can mend a configuration file
    assert plan.state == "failed" and plan.try_number == 1
