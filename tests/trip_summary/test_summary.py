"""Writing, re-running, sharding and the options of the trip summary (on real Parquet files)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from iot_cli.commands.trips import command as trips_command
from iot_core.settings import PROJECT_ROOT
from trips.config import load_config
from trips.lake import Lake
from trips.lakegen import ALTITUDE, SPEED, seed_config
from trips.summary import (
    DayReport,
    DayResult,
    Options,
    merge_parts,
    run_days,
    shard_devices,
    summarise_day,
    write_part,
)

from .conftest import DAY1, DAY2, DAY3, _ms, _series, _write


def test_rerun_rewrites_the_same_file_atomically(edge_lake):
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    output = root / lake.output_relpath(DAY1)
    several_workers = Options(threads=2, slice_devices=2)
    first = run_days(lake, config, DAY1, DAY1, options=several_workers)
    bytes_before = output.read_bytes()
    second = run_days(lake, config, DAY1, DAY1, options=several_workers)
    assert first == second and first[0][1] > 0
    assert output.read_bytes() == bytes_before        # same values to the last bit, same file
    folder = (root / lake.output_relpath(DAY1)).parent
    assert [p.name for p in folder.iterdir()] == ["20261120.parquet"]   # no temporary file left behind


def test_thread_count_does_not_change_a_bit(edge_lake):
    """Workers split the devices; each device's sums add the same rows in the same order."""
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    one = summarise_day(lake, config, DAY1, options=Options(threads=1, slice_devices=2))
    several = summarise_day(lake, config, DAY1, options=Options(threads=3, slice_devices=2))
    assert one.num_rows > 0 and several.equals(one)
    # another slicing may change a plan, and with it the last bits of a sum: never more than that
    whole = summarise_day(lake, config, DAY1, options=Options(slice_devices=100)).to_pandas()
    pd.testing.assert_frame_equal(several.to_pandas(), whole, rtol=1e-12, atol=0)


def test_cli_imports_only_what_the_job_needs(edge_lake):
    """`iot trips` on a local lake runs without pandas, pyarrow, numpy or the platform's heavy libraries."""
    root, config_path = edge_lake
    script = (
        "import sys\n"
        "from iot_cli.main import cli\n"
        f"cli.main(['trips', '--config', {str(config_path)!r}, '--root', {str(root)!r}, '--start', '2026-11-20'],"
        " standalone_mode=False)\n"
        "heavy = ('pandas', 'pyarrow', 'numpy', 'airflow', 'dlt', 'mlflow', 'sqlalchemy', 'sklearn', 'lightgbm')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2026-11-20: " in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"


def test_day_without_trips_removes_a_stale_summary(edge_lake):
    root, config_path = edge_lake
    lake = Lake(root)
    stale = lake.write_atomic(pa.table({"x": [1]}), lake.output_relpath(DAY3))
    assert (root / lake.output_relpath(DAY3)).exists(), stale
    assert run_days(lake, load_config(config_path), DAY3, DAY3) == [DayResult(DAY3, 0, None, DayReport())]
    assert not (root / lake.output_relpath(DAY3)).exists()


def test_shards_merged_equal_the_whole_day(edge_lake):
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    whole = summarise_day(lake, config, DAY1, options=Options(slice_devices=2))   # slices as the shards
    shards = shard_devices(config, 2)
    assert [d for s in shards for d in s] == config.devices and len(shards) == 3
    for index, devices in enumerate(shards):
        write_part(lake, DAY1, "manual__2026-11-20T00:00:00+00:00", index,
                   summarise_day(lake, config, DAY1, devices=devices))
    rows, path, report = merge_parts(lake, DAY1, "manual__2026-11-20T00:00:00+00:00", shards)
    assert rows == whole.num_rows and path.endswith("20261120.parquet") and report == DayReport()
    assert lake.read_table(lake.output_relpath(DAY1)).equals(whole)
    staging = root / "aggregations" / "_staging" / "tripsummary" / "20261120"
    assert not staging.exists() or not any(staging.iterdir())   # the parts are gone


def test_gap_option_changes_how_trips_are_cut(edge_lake):
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    default = summarise_day(lake, config, DAY1, devices=["EDGE0001"]).to_pandas()
    long_gap = summarise_day(lake, config, DAY1, devices=["EDGE0001"], options=Options(gap_minutes=120)).to_pandas()
    assert default.TripID.nunique() == 3 and long_gap.TripID.nunique() == 1
    with pytest.raises(ValueError, match="must not be negative"):
        summarise_day(lake, config, DAY1, devices=["EDGE0001"], options=Options(gap_minutes=-1))


def test_cross_midnight_keeps_a_trip_whole(tmp_path):
    lake = Lake(tmp_path / "lake")
    night = np.concatenate([_series(_ms(DAY1, 23, 50), _ms(DAY1, 23, 59, 59)),
                            _series(_ms(DAY2, 0, 0), _ms(DAY2, 0, 10))])
    morning = _series(_ms(DAY2, 1, 0), _ms(DAY2, 1, 5))
    for message, column in ((SPEED, "Speed"), (ALTITUDE, "Altitude")):
        _write(lake, "CAR00001", message, DAY1, "230000", night[night < _ms(DAY2, 0, 0)],
               **{column: np.ones(int((night < _ms(DAY2, 0, 0)).sum()))})
        day2_t = np.concatenate([night[night >= _ms(DAY2, 0, 0)], morning])
        _write(lake, "CAR00001", message, DAY2, "000000", day2_t, **{column: np.ones(len(day2_t))})
    config_raw = seed_config(["CAR00001"])
    config_raw["cluster_details"][0]["cluster1"]["aggregations"].pop()   # no IMU in this lake
    config = load_config_from(tmp_path, config_raw)

    split = {d: summarise_day(lake, config, d).to_pandas() for d in (DAY1, DAY2)}
    assert split[DAY1].TripID.nunique() == 1 and split[DAY2].TripID.nunique() == 2
    whole = {d: summarise_day(lake, config, d, options=Options(cross_midnight=True)).to_pandas() for d in (DAY1, DAY2)}
    assert whole[DAY1].TripID.nunique() == 1 and whole[DAY2].TripID.nunique() == 1
    speed = whole[DAY1][whole[DAY1].Signal == "Speed"].iloc[0]
    assert speed.Count == 600 + 601 and speed.Duration == 20 * 60    # 23:50:00 .. 00:10:00 in one trip
    assert whole[DAY2].TripStart.iloc[0] == _ms(DAY2, 0, 59, 59) // 1000


def load_config_from(folder, raw):
    path = folder / "aggregations.json"
    path.write_text(json.dumps(raw))
    return load_config(path)


def test_cli_summarises_a_range_and_reports_bad_config(edge_lake, tmp_path):
    root, config_path = edge_lake
    runner = CliRunner()
    result = runner.invoke(trips_command, ["--config", str(config_path), "--root", str(root),
                                           "--start", "2026-11-20", "--end", "2026-11-22"])
    assert result.exit_code == 0, result.output
    assert "2026-11-21: " in result.output and "2026-11-22: 0 rows (no trips, no file)" in result.output
    assert (root / "aggregations/tripsummary/2026/11/21/20261121.parquet").exists()

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"device_clusters": [{"devices": ["A"], "cluster": "c1"}], "cluster_details": []}))
    result = runner.invoke(trips_command, ["--config", str(bad), "--root", str(root), "--start", "2026-11-20"])
    assert result.exit_code != 0 and "cluster 'c1' (devices A) has no entry in cluster_details" in result.output


def test_files_wholly_inside_a_trip_skip_the_per_reading_lookup(edge_lake):
    """Day 2 of EDGE0001 (one trip, 09:59:59-10:10:01): the IMU files inside it are aggregated per file
    (their NaN and inf values included, checked against the seed by the parity test), the file before the
    trip is not read, and the file with a null t goes through the per-reading path."""
    from trips.lakegen import IMU
    from trips.summary import _DayRun

    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    run = _DayRun(lake, config, DAY2, config.devices, Options())
    try:
        assert run.find_windows() > 0
        files = run._files(["EDGE0001"], IMU, (0,))
        whole, per_row = run._split_by_window(files)
        name = lambda paths: sorted(p.rsplit("/", 1)[1] for p in paths)  # noqa: E731
        assert name(files.files) == ["090000.parquet", "100000a.parquet", "100000b.parquet", "100000d.parquet"]
        assert name(whole.files) == ["100000a.parquet", "100000b.parquet"]
        assert name(per_row.files) == ["100000d.parquet"]
    finally:
        run.close()


def test_identifier_signals_come_from_the_window_scan_only_where_exact(tmp_path):
    """The trip identifier's own signals are added up per gap-wide bucket by the scan that finds the
    windows (a bucket lies wholly inside one trip) when the gap is at least 2 s. Below that, a reading
    can lie in the slot before the next trip's window, in no trip (as in the seed), so the files take
    the other ways: 08:00:01 is 1.8 s before the second trip (gap 1.5 s) and belongs to no window."""
    from trips.summary import _DayRun

    lake = Lake(tmp_path / "lake")
    _write(lake, "DEV00001", SPEED, DAY1, "080000", [_ms(DAY1, 8, 0, 0), _ms(DAY1, 8, 0, 1), _ms(DAY1, 8, 0, 2.8)],
           Speed=[10.0, 20.0, 30.0])
    config = load_config_from(tmp_path, seed_config(["DEV00001"]))
    short_gap = Options(gap_minutes=1.5 / 60)
    for options, bucketed, counts, values in ((Options(), True, [3], [20.0]),
                                              (short_gap, False, [1, 1], [10.0, 30.0])):
        run = _DayRun(lake, config, DAY1, config.devices, options)
        try:
            assert run.find_windows() == len(counts)
            assert (SPEED in run._bucket_scans) is bucketed
        finally:
            run.close()
        speed = summarise_day(lake, config, DAY1, options=options).to_pandas().query("Signal == 'Speed'")
        assert speed.Count.tolist() == counts and speed.Value.tolist() == values
