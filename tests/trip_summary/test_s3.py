"""The trip summary reads and writes an S3-compatible store (a moto S3 server on a free port)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from trips.config import load_config
from trips.lake import Lake
from trips.lakegen import ALTITUDE, IMU, SPEED
from trips.summary import Options, run_days, summarise_day

from .conftest import DAY1, DAY2, DAY3, upload_lake

BUCKET = "vehicle-lake"


@pytest.fixture(scope="module")
def s3_lake(edge_lake, s3_endpoint):
    root, config_path = edge_lake
    assert upload_lake(s3_endpoint, root, BUCKET) > 50
    return Lake(f"s3://{BUCKET}/lake", s3_endpoint=s3_endpoint), Lake(root), load_config(config_path)


def test_s3_lake_gives_the_local_result_and_writes_the_daily_files(s3_lake):
    s3, local, config = s3_lake
    assert "EDGE0001" in s3.devices()
    results = run_days(s3, config, DAY1, DAY3)
    assert [(day, path is not None) for day, _, path, _ in results] == [(DAY1, True), (DAY2, True), (DAY3, False)]
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


def _local_lake_files(local: Lake, config, day) -> int:
    return sum(len(local.day_files(d, m, day) or []) for d in config.devices
               for m in {config.cluster_of(d).trip_message, *(a.message for a in config.cluster_of(d).aggregations)})


def test_s3_reads_each_object_once_with_few_requests(s3_lake, s3_endpoint):
    """Listings answer DuckDB's questions about the files, and each object is fetched once, with one GET
    and no HEAD (the listing gave its size), many at a time; the seed's way (a filesystem wrapper) made
    several requests per file and query, one after the other."""
    from benchmarks.trips.s3_proxy import DelayProxy

    s3, local, config = s3_lake
    with DelayProxy(s3_endpoint, latency_s=0.005) as proxy:
        lake = Lake(s3.root, s3_endpoint=proxy.url)
        table = summarise_day(lake, config, DAY1)
        stats = proxy.stats()
    assert table.equals(summarise_day(local, config, DAY1))
    files = _local_lake_files(local, config, DAY1)
    folders = len(config.devices) * 3
    assert lake.objects.stats["gets"] == files and lake.objects.stats["ranged_reads"] == 0
    assert stats["by_method"] == {"GET": files + lake.objects.stats["lists"]}
    assert lake.objects.stats["lists"] <= folders


def test_a_large_object_whose_data_is_read_is_not_fetched_for_its_footer_first(s3_lake, s3_endpoint, monkeypatch):
    """A footer query alone fetches only a large file's tail, but the slice fetches the same objects
    whole ahead of its data queries: then the footer query takes the whole object too, one GET, not a
    tail and then the whole (with "large" lowered to 8 KiB and the tail to 4 KiB, most of the edge lake's
    files are large)."""
    import trips.s3_objects
    from benchmarks.trips.s3_proxy import DelayProxy

    monkeypatch.setattr(trips.s3_objects, "WHOLE_BELOW", 8 * 1024)
    monkeypatch.setattr(trips.s3_objects, "TAIL_BYTES", 4 * 1024)
    s3, local, config = s3_lake
    sizes = [os.path.getsize(f) for d in config.devices for m in (SPEED, ALTITUDE, IMU)
             for f in local.day_files(d, m, DAY1) or []]
    assert sum(size > 8 * 1024 for size in sizes) > 5
    with DelayProxy(s3_endpoint, latency_s=0.005) as proxy:
        # one fetch at a time: the footer queries' objects come first (rank 0), before the slice's
        # fetching ahead has reached them
        lake = _with_budget(s3, proxy.url, 256 << 20, concurrency=1)
        table = summarise_day(lake, config, DAY1)
        stats = proxy.stats()
    assert table.equals(summarise_day(local, config, DAY1))
    assert lake.objects.stats["gets"] == len(sizes) and lake.objects.stats["bytes"] == sum(sizes)
    assert stats["by_method"] == {"GET": len(sizes) + lake.objects.stats["lists"]}

    footers = Lake(s3.root, s3_endpoint=s3_endpoint)   # a footer query on its own: the tails only
    files = [f for d in config.devices for f in footers.day_files(d, IMU, DAY1) or []]
    with footers.reading(files, footers_only=True):
        footers.duckdb().execute("select count(*) from parquet_metadata($files)", {"files": files}).fetchall()
    large = [f for f in files if footers.objects.size(f) > 8 * 1024]
    assert large and footers.objects.stats["bytes"] < sum(footers.objects.size(f) for f in files)


def test_without_botocore_objects_are_fetched_through_pyarrow(s3_lake, s3_endpoint):
    """Where botocore is not installed, pyarrow's client fetches the objects (a HEAD before each GET):
    the same result."""
    from benchmarks.trips.s3_proxy import DelayProxy
    from trips.s3_objects import S3Objects

    s3, local, config = s3_lake
    with DelayProxy(s3_endpoint) as proxy:
        lake = Lake(s3.root, s3_endpoint=proxy.url)
        lake._objects = S3Objects(lake.fs, client=lambda connections: None)
        table = summarise_day(lake, config, DAY1)
        stats = proxy.stats()
    assert table.equals(summarise_day(local, config, DAY1))
    files = _local_lake_files(local, config, DAY1)
    assert stats["by_method"] == {"GET": files + lake.objects.stats["lists"], "HEAD": files}


def test_the_day_file_is_uploaded_with_one_request(s3_lake, s3_endpoint):
    """The day's file (written by DuckDB) and a DAG part (written by pyarrow) are each one PUT, not a
    multipart upload (3 requests); the day's run asks for nothing else but the listings and the GETs."""
    from benchmarks.trips.s3_proxy import DelayProxy
    from trips.summary import staging_relpath, write_part

    s3, local, config = s3_lake
    requests: list[tuple[str, str]] = []
    record = lambda method, path: requests.append((method, path))  # noqa: E731 - None: forwarded
    with DelayProxy(s3_endpoint, fail=record) as proxy:
        lake = Lake(s3.root, s3_endpoint=proxy.url)
        [result] = run_days(lake, config, DAY1, DAY1)
        day_requests, requests[:] = list(requests), []
        part = write_part(lake, DAY1, "one-put", 0, summarise_day(local, config, DAY1))
        part_requests = list(requests)
    assert s3.read_table(s3.output_relpath(DAY1)).equals(summarise_day(local, config, DAY1))
    assert [r for r in day_requests if r[0] != "GET"] == [("PUT", "/" + result.path[len("s3://"):])]
    files = _local_lake_files(local, config, DAY1)
    assert len(day_requests) == 1 + files + lake.objects.stats["lists"]
    assert part_requests == [("PUT", "/" + part[len("s3://"):])]
    s3.delete_dir(staging_relpath(DAY1, "one-put"))


def _with_budget(s3: Lake, endpoint: str, budget: int, concurrency: int = 4) -> Lake:
    from trips.s3_objects import S3Objects

    lake = Lake(s3.root, s3_endpoint=endpoint)
    lake._objects = S3Objects(lake.fs, concurrency=concurrency, budget_bytes=budget, client=lake.s3_client())
    return lake


def _watch_peak(lake: Lake) -> list[int]:
    """[the most bytes the lake's objects held at once], kept up to date while it runs."""
    objects, peak = lake.objects, [0]
    new_entry = objects._new_entry

    def watched_new_entry(path, begin, length):
        entry = new_entry(path, begin, length)
        peak[0] = max(peak[0], objects._held)
        return entry

    objects._new_entry = watched_new_entry
    return peak


def test_s3_objects_stay_within_the_memory_budget(s3_lake, s3_endpoint):
    """With room for a third of the day's objects, objects are released and fetched again when needed
    (more GETs), the memory held stays within the budget plus the object DuckDB waits for (one per
    reading thread: two slices side by side, two objects), and the result is the same. With room for
    almost nothing, DuckDB's reads become ranged GETs."""
    s3, local, config = s3_lake
    sizes = [os.path.getsize(f) for d in config.devices for m in (SPEED, ALTITUDE, IMU)
             for f in local.day_files(d, m, DAY1) or []]
    budget = max(4 * max(sizes) + 1, sum(sizes) // 3)
    assert budget < sum(sizes)
    lake = _with_budget(s3, s3_endpoint, budget)
    peak = _watch_peak(lake)
    assert summarise_day(lake, config, DAY1).equals(summarise_day(local, config, DAY1))
    assert 0 < peak[0] <= budget + max(sizes)
    assert lake.objects.stats["gets"] > len(sizes)    # some objects were released and fetched again
    assert not lake.objects._current and lake.objects._held <= budget   # every query ended: all done

    sliced = Options(threads=2, slice_devices=2)
    lake = _with_budget(s3, s3_endpoint, budget)
    peak = _watch_peak(lake)
    assert summarise_day(lake, config, DAY1, options=sliced).equals(summarise_day(local, config, DAY1, options=sliced))
    assert 0 < peak[0] <= budget + 2 * max(sizes)

    tiny = _with_budget(s3, s3_endpoint, 1024)
    assert summarise_day(tiny, config, DAY1).equals(summarise_day(local, config, DAY1))
    assert tiny.objects.stats["ranged_reads"] > 0


def test_a_device_whose_objects_cannot_be_read_is_left_out_and_reported(s3_lake, s3_endpoint, edge_lake):
    """EDGE0002's objects answer 500 (after the client's retries): that device fails on its own, the
    other devices are written, the file's footer names it, and `iot trips` exits with an error."""
    import json

    from click.testing import CliRunner

    from benchmarks.trips.s3_proxy import DelayProxy
    from iot_cli.commands.trips import command
    from trips.summary import TripSummaryIncomplete, summarise_devices

    s3, local, config = s3_lake
    broken = lambda method, path: 500 if "/lake/EDGE0002/" in path else None  # noqa: E731
    others = [d for d in config.devices if d != "EDGE0002"]
    expected = summarise_day(local, config, DAY1, devices=others, options=Options(slice_devices=1))
    with DelayProxy(s3_endpoint, fail=broken) as proxy:
        lake = Lake(s3.root, s3_endpoint=proxy.url)
        table, report = summarise_devices(lake, config, DAY1, options=Options(slice_devices=100))
        assert list(report.failed_devices) == ["EDGE0002"] and not report.skipped_files
        assert table.num_rows == expected.num_rows > 0
        assert table.to_pandas().equals(expected.to_pandas())   # the others, summarised one by one
        with pytest.raises(TripSummaryIncomplete, match="EDGE0002"):
            summarise_day(lake, config, DAY1)

        result = CliRunner().invoke(command, ["--config", str(edge_lake[1]), "--root", s3.root,
                                              "--s3-endpoint", proxy.url, "--start", "2026-11-20"])
    assert result.exit_code == 1 and "FAILED device EDGE0002" in result.output, result.output
    written = s3.read_table(s3.output_relpath(DAY1))
    assert set(written.column("DeviceID").to_pylist()) == set(expected.column("DeviceID").to_pylist())
    assert list(json.loads(written.schema.metadata[b"trips:failed_devices"])) == ["EDGE0002"]


def test_devices_failing_in_parallel_slices_are_each_left_out(s3_lake, s3_endpoint):
    """Two devices in two slices running side by side fail together: each slice falls back to its devices
    one by one at the same time (on connections of its own), and both devices are left out."""
    from benchmarks.trips.s3_proxy import DelayProxy
    from trips.summary import summarise_devices

    s3, local, config = s3_lake
    failing = {"EDGE0001", "EDGE0002"}
    broken = lambda method, path: 500 if any(f"/lake/{d}/" in path for d in failing) else None  # noqa: E731
    sliced = Options(threads=3, slice_devices=2)
    assert sum(bool(failing & set(s)) for s in sliced.slices(config.devices)) == 2   # two slices fail
    others = [d for d in config.devices if d not in failing]
    expected = summarise_day(local, config, DAY1, devices=others, options=Options(slice_devices=1)).to_pandas()
    with DelayProxy(s3_endpoint, fail=broken) as proxy:
        table, report = summarise_devices(Lake(s3.root, s3_endpoint=proxy.url), config, DAY1, options=sliced)
    assert set(report.failed_devices) == failing
    got = table.to_pandas()
    # devices that shared a slice with a failing one were summarised alone, the others in their slice
    pd.testing.assert_frame_equal(got, expected, rtol=1e-12, atol=0)


def test_a_store_that_answers_nothing_fails_every_device_and_writes_nothing(s3_lake, s3_endpoint):
    """Every object answers 500: every device fails, in slices of one device side by side, the report
    names them all and no rows are made (a day's earlier file is kept, see _keep_or_remove)."""
    from benchmarks.trips.s3_proxy import DelayProxy
    from trips.summary import summarise_devices

    s3, local, config = s3_lake
    # object requests fail (their paths hold the key); listings (the prefix is in the query) still answer
    with DelayProxy(s3_endpoint, fail=lambda method, path: 500 if "/lake/" in path else None) as proxy:
        table, report = summarise_devices(Lake(s3.root, s3_endpoint=proxy.url), config, DAY1,
                                          options=Options(threads=3, slice_devices=1))
    with_data = {d for d in config.devices if local.day_files(d, SPEED, DAY1) or local.day_files(d, ALTITUDE, DAY1)}
    assert table.num_rows == 0 and set(report.failed_devices) == with_data


def test_damaged_objects_are_skipped_as_damaged_files_are(tmp_path_factory, s3_endpoint):
    """The damaged lake of test_bad_input on S3 (an empty object, a truncated one, text, a damaged data
    page, an integer t): the same files skipped for the same reasons, the same rows as from the local
    lake. An empty object's first byte is read without an error (S3 answers that range with 416)."""
    from trips.summary import summarise_devices

    from .test_bad_input import build_damaged_lake

    root = tmp_path_factory.mktemp("damaged-s3") / "lake"
    config_path, damaged = build_damaged_lake(root)
    config = load_config(config_path)
    upload_lake(s3_endpoint, root, "damaged-lake")
    s3 = Lake("s3://damaged-lake/lake", s3_endpoint=s3_endpoint)
    local_table, local_report = summarise_devices(Lake(root), config, DAY1)
    s3_table, s3_report = summarise_devices(s3, config, DAY1)
    assert s3_report.complete and len(local_report.skipped_files) == len(damaged)
    local_of = {f"s3://damaged-lake/lake/{os.path.relpath(path, root)}": path for path in local_report.skipped_files}
    assert set(s3_report.skipped_files) == set(local_of)
    for path, reason in s3_report.skipped_files.items():   # DuckDB names the file in some reasons
        local_path = local_of[path]
        assert reason.replace(path, "FILE") == local_report.skipped_files[local_path].replace(local_path, "FILE")
    assert s3_table.num_rows > 0 and s3_table.equals(local_table)
    s3.probe(next(p for p in s3_report.skipped_files if p.endswith("_empty.parquet")))
