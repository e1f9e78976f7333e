"""trip_summary_daily runs end to end through Airflow (dag.test) and maps one task per device shard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trips.config import load_config
from trips.lake import Lake
from trips.summary import Options, staging_relpath, summarise_day

from .conftest import DAY1, upload_lake

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
    # merge waits for every shard, failed or not, but not for a plan that failed (nothing to merge)
    merge = next(ti for ti in run.get_task_instances() if ti.task_id == "merge")
    assert merge.state in ("upstream_failed", "skipped"), merge.state


def test_a_failing_device_fails_its_shard_and_the_merge_writes_the_others(platform, load_dag, edge_lake,
                                                                          s3_endpoint, monkeypatch):
    """EDGE0002's objects cannot be read (S3 answers 500): its shard writes what it has and fails, the
    other shards succeed, and merge writes their devices, keeps the parts, and fails naming EDGE0002."""
    import json

    from benchmarks.trips.s3_proxy import DelayProxy
    from iot_core.settings import get_settings

    root, config_path = edge_lake
    upload_lake(s3_endpoint, root, "dag-lake")
    broken = lambda method, path: 500 if "/lake/EDGE0002/" in path else None  # noqa: E731
    dag = load_dag("trip_summary_daily")
    dag.get_task("summarise_shard").retries = 0   # the DAG retries a shard twice, 30 s and more apart
    try:
        with DelayProxy(s3_endpoint, fail=broken) as proxy:
            monkeypatch.setenv("TRIPS_S3_ENDPOINT", proxy.url)
            get_settings.cache_clear()
            run = dag.test(logical_date=datetime(2026, 11, 20, tzinfo=UTC),
                           run_conf={"config": str(config_path), "root": "s3://dag-lake/lake", "shard_size": 2})
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert run.state == "failed"
    config = load_config(config_path)
    shards = [config.devices[i:i + 2] for i in range(0, len(config.devices), 2)]
    failing = next(i for i, shard in enumerate(shards) if "EDGE0002" in shard)
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert {i: states[("summarise_shard", i)] for i in range(len(shards))} == {
        i: ("failed" if i == failing else "success") for i in range(len(shards))}
    assert states[("merge", -1)] == "failed"

    s3 = Lake("s3://dag-lake/lake", s3_endpoint=s3_endpoint)
    written = s3.read_table(s3.output_relpath(DAY1))
    assert json.loads(written.schema.metadata[b"trips:failed_devices"]).keys() == {"EDGE0002"}
    whole = summarise_day(Lake(root), config, DAY1, options=Options(slice_devices=2)).to_pandas()
    expected = whole[whole.DeviceID != "EDGE0002"].reset_index(drop=True)
    assert len(expected) > 0 and written.to_pandas().equals(expected)
    assert len(s3.list_files(staging_relpath(DAY1, run.run_id))) == len(shards)   # kept to complete the day
