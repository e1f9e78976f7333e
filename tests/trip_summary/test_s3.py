"""The trip summary reads and writes an S3-compatible store (a moto S3 server on a free port)."""

from __future__ import annotations

import os

import pytest

from iot_cli.localstack.process import free_port
from trips.config import load_config
from trips.lake import Lake
from trips.summary import Options, run_days, summarise_day

from .conftest import DAY1, DAY2, DAY3

BUCKET = "vehicle-lake"


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def s3_lake(edge_lake, s3_endpoint):
    import boto3

    root, config_path = edge_lake
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    uploaded = 0
    for path in root.rglob("*.parquet"):
        client.upload_file(str(path), BUCKET, f"lake/{path.relative_to(root).as_posix()}")
        uploaded += 1
    assert uploaded > 50
    return Lake(f"s3://{BUCKET}/lake", s3_endpoint=s3_endpoint), Lake(root), load_config(config_path)


def test_s3_lake_gives_the_local_result_and_writes_the_daily_files(s3_lake):
    s3, local, config = s3_lake
    assert "EDGE0001" in s3.devices()
    results = run_days(s3, config, DAY1, DAY3)
    assert [(day, path is not None) for day, _, path in results] == [(DAY1, True), (DAY2, True), (DAY3, False)]
    for day in (DAY1, DAY2):
        written = s3.read_table(s3.output_relpath(day))
        assert written.equals(summarise_day(local, config, day))
        assert written.num_rows > 0
    assert results[0][2] == f"s3://{BUCKET}/lake/aggregations/tripsummary/2026/11/20/20261120.parquet"
    # re-running overwrites with identical content
    again = run_days(s3, config, DAY1, DAY1)
    assert again == results[:1]
    assert s3.read_table(s3.output_relpath(DAY1)).equals(summarise_day(local, config, DAY1))


def test_s3_lake_in_parallel_slices(s3_lake):
    """Several workers, each with its own DuckDB reading S3, give the local result bit for bit."""
    s3, local, config = s3_lake
    sliced = Options(threads=2, slice_devices=2)
    from_s3 = summarise_day(s3, config, DAY1, options=sliced)
    assert from_s3.num_rows > 0 and from_s3.equals(summarise_day(local, config, DAY1, options=sliced))
