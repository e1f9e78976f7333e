"""Writing, re-running, sharding and the options of the trip summary (on real Parquet files)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from click.testing import CliRunner

from iot_cli.commands.trips import command as trips_command
from trips.config import load_config
from trips.lake import Lake
from trips.lakegen import ALTITUDE, SPEED, seed_config
from trips.summary import Options, merge_parts, run_days, shard_devices, summarise_day, write_part

from .conftest import DAY1, DAY2, DAY3, _ms, _series, _write


def test_rerun_rewrites_the_same_file_atomically(edge_lake):
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    first = run_days(lake, config, DAY1, DAY1)
    table_before = lake.read_table(lake.output_relpath(DAY1))
    second = run_days(lake, config, DAY1, DAY1)
    assert first == second and first[0][1] > 0
    assert lake.read_table(lake.output_relpath(DAY1)).equals(table_before)
    folder = (root / lake.output_relpath(DAY1)).parent
    assert [p.name for p in folder.iterdir()] == ["20261120.parquet"]   # no temporary file left behind


def test_day_without_trips_removes_a_stale_summary(edge_lake):
    root, config_path = edge_lake
    lake = Lake(root)
    stale = lake.write_atomic(pa.table({"x": [1]}), lake.output_relpath(DAY3))
    assert (root / lake.output_relpath(DAY3)).exists(), stale
    assert run_days(lake, load_config(config_path), DAY3, DAY3) == [(DAY3, 0, None)]
    assert not (root / lake.output_relpath(DAY3)).exists()


def test_shards_merged_equal_the_whole_day(edge_lake):
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    whole = summarise_day(lake, config, DAY1)
    shards = shard_devices(config, 2)
    assert [d for s in shards for d in s] == config.devices and len(shards) == 3
    for index, devices in enumerate(shards):
        write_part(lake, DAY1, "manual__2026-11-20T00:00:00+00:00", index,
                   summarise_day(lake, config, DAY1, devices=devices))
    rows, path = merge_parts(lake, DAY1, "manual__2026-11-20T00:00:00+00:00", len(shards))
    assert rows == whole.num_rows and path.endswith("20261120.parquet")
    assert lake.read_table(lake.output_relpath(DAY1)).equals(whole)
    staging = root / "aggregations" / "_staging" / "tripsummary" / "20261120"
    assert not staging.exists() or not any(staging.iterdir())   # the parts are gone


def test_gap_option_changes_how_trips_are_cut(edge_lake):
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    default = summarise_day(lake, config, DAY1, devices=["EDGE0001"]).to_pandas()
    long_gap = summarise_day(lake, config, DAY1, devices=["EDGE0001"], options=Options(gap_minutes=120)).to_pandas()
    assert default.TripID.nunique() == 3 and long_gap.TripID.nunique() == 1


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
