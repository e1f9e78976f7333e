"""Every Parquet representation of ``t`` gives the seed script's rows and values.

The same drive (two generated vehicles plus one with nanosecond edge cases, on the day the EU leaves
summer time) is written with ``t`` as each representation a logger pipeline produces: pandas' default
for tz-aware times (``timestamp[ns, tz=UTC]``), naive nanoseconds, microseconds in Europe/Copenhagen,
milliseconds UTC, whole seconds, Spark's INT96, and mixes across the files of one message.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trips.config import load_config
from trips.lake import Lake, day_path
from trips.lakegen import ALTITUDE, IMU, SPEED, LakeSpec, generate_lake, seed_config
from trips.summary import Options, _DayRun, run_days

from .conftest import run_baseline

pytestmark = pytest.mark.timeout(300)

DAY = date(2026, 10, 25)   # Europe/Copenhagen goes from CEST to CET at 01:00 UTC
NS = 1_000_000_000

# name -> (Arrow type written, as INT96); a value is floored to the type's unit before it is written
REPRESENTATIONS = {
    "ns_utc": (pa.timestamp("ns", tz="UTC"), False),     # what pandas writes for tz-aware times
    "ns_naive": (pa.timestamp("ns"), False),
    "us_copenhagen": (pa.timestamp("us", tz="Europe/Copenhagen"), False),
    "us_utc": (pa.timestamp("us", tz="UTC"), False),
    "us_naive": (pa.timestamp("us"), False),
    "ms_utc": (pa.timestamp("ms", tz="UTC"), False),
    "ms_naive": (pa.timestamp("ms"), False),
    "s_utc": (pa.timestamp("s", tz="UTC"), False),        # stored as milliseconds, read back as seconds
    "int96": (pa.timestamp("ns"), True),                  # Spark / Impala; read back as naive ns
}
_UNIT_NS = {"s": NS, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _ns(hh: int, mm: int, ss: int = 0, frac_ns: int = 0) -> int:
    return int(datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=UTC).timestamp()) * NS + frac_ns


def _edge_drive(lake_root: Path) -> dict[str, dict[str, tuple[np.ndarray, dict]]]:
    """Device NSEDGE01, in nanoseconds: a trip over the summer-time switch (00:50-01:10 UTC); a trip whose
    first reading is 0.9999996 s past a second (pandas rounds the window's start up to the next second);
    then a gap of exactly 10 minutes (same trip) and one of 10 minutes and 1 ns (a new trip, in
    nanoseconds only). IMU readings fall on a window's last nanosecond and 1 ns after it."""
    rng = np.random.default_rng(21)
    night = np.arange(_ns(0, 50), _ns(1, 10) + 1, NS)
    part_a = np.arange(_ns(8, 0, 0, 999_999_600), _ns(8, 5) + 1, NS)   # last at 08:05:00.9999996
    part_b_start = part_a[-1] + 600 * NS                                # exactly 10 min later
    part_b = np.arange(part_b_start, part_b_start + 300 * NS + 1, NS)
    part_c_start = part_b[-1] + 600 * NS + 1                            # 10 min + 1 ns later
    part_c = np.arange(part_c_start, part_c_start + 120 * NS + 1, NS)
    speed_t = np.concatenate([night, part_a, part_b, part_c])
    files = {SPEED: {"000000": (night, {"Speed": rng.uniform(0, 90, len(night))}),
                     "080000": (speed_t[len(night):], {"Speed": rng.uniform(0, 90, len(speed_t) - len(night))})}}
    # window of the night trip: [00:49:59, 07:59:58.9999996]; the next window starts at 07:59:59.9999996
    night_end = _ns(7, 59, 58, 999_999_600)
    imu_t = np.concatenate([np.arange(_ns(0, 49, 58), _ns(1, 11), NS // 4),
                            [night_end - 1, night_end, night_end + 1, night_end + NS + 1],
                            np.arange(_ns(8, 0), part_c[-1] + 3 * NS, NS // 4)])
    hours = {"000000": imu_t < _ns(1, 0), "010000": (imu_t >= _ns(1, 0)) & (imu_t < _ns(8, 0)),
             "080000": imu_t >= _ns(8, 0)}
    files[IMU] = {name: (imu_t[mask], {c: rng.normal(0, 1, int(mask.sum()))
                                       for c in ("AccelerationX", "AccelerationY", "AccelerationZ")})
                  for name, mask in hours.items()}
    alt_t = np.arange(_ns(0, 50), _ns(8, 30), 5 * NS)
    files[ALTITUDE] = {"000000": (alt_t, {"Altitude": rng.uniform(10, 30, len(alt_t))})}
    return files


def _to_ns(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.timestamp("ns")).cast(pa.int64()).to_numpy(zero_copy_only=False)


def _write_t(path: Path, t_ns: np.ndarray, signals: dict, representation: str) -> None:
    arrow_type, int96 = REPRESENTATIONS[representation]
    unit = _UNIT_NS[arrow_type.unit]
    floored = (t_ns // unit) * unit
    t = pa.array(floored, pa.timestamp("ns", tz=arrow_type.tz)).cast(arrow_type)
    pq.write_table(pa.table({"t": t, **{k: pa.array(v) for k, v in signals.items()}}), path,
                   use_deprecated_int96_timestamps=int96)


def build_lake(root: Path, representations: list[str]) -> Path:
    """The drive with t in the given representations (the files of a message cycle through them);
    returns the path of aggregations.json."""
    lake = Lake(root)
    devices = generate_lake(lake, LakeSpec(devices=2, start=DAY, trips_per_day=3, imu_hz=2, seed=31))
    rng = np.random.default_rng(4)
    index = 0
    # the generated files (milliseconds) gain a sub-millisecond part, so the units differ
    for path in sorted(root.rglob("*.parquet")):
        table = pq.read_table(path)
        t_ns = _to_ns(table["t"]) + rng.integers(0, 1_000_000, table.num_rows)
        _write_t(path, t_ns, {c: table[c] for c in table.column_names if c != "t"},
                 representations[index % len(representations)])
        index += 1
    for message, files in _edge_drive(root).items():
        folder = root / "NSEDGE01" / message / day_path(DAY)
        folder.mkdir(parents=True)
        for name, (t_ns, signals) in files.items():
            _write_t(folder / f"{name}.parquet", t_ns, signals, representations[index % len(representations)])
            index += 1
    config_path = root.parent / "aggregations.json"
    config_path.write_text(json.dumps(seed_config([*devices, "NSEDGE01"])))
    return config_path


def _ours(root: Path, config_path: Path) -> pd.DataFrame:
    lake = Lake(root)
    [result] = run_days(lake, load_config(config_path), DAY, DAY)
    assert result.report.complete and not result.report.skipped_files, result.report
    return pd.read_parquet(root / lake.output_relpath(DAY))


def _edge_trips(df: pd.DataFrame) -> list[int]:
    return sorted(set(df[df.DeviceID == "NSEDGE01"].TripStart))


@pytest.mark.parametrize("representations", [
    ["ns_utc"], ["ns_naive"], ["us_copenhagen"], ["ms_utc"], ["s_utc"], ["int96"],
    ["ns_naive", "ms_naive", "int96", "us_naive"],    # units mixed across the files of one message
    ["ms_utc", "ns_utc", "us_utc"],
], ids=lambda r: "+".join(r))
def test_every_representation_matches_the_seed(tmp_path, representations):
    root = tmp_path / "lake"
    config_path = build_lake(root, representations)
    expected = run_baseline(root, config_path, DAY, DAY)[DAY]
    got = _ours(root, config_path)
    assert len(got) == len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)
    # the edge cases are in the data: the 10 min + 1 ns gap splits a trip only where t keeps nanoseconds
    edge_file = root / "NSEDGE01" / SPEED / day_path(DAY) / "080000.parquet"
    in_ns = pq.read_schema(edge_file).field("t").type.unit == "ns"   # INT96 included
    trips = _edge_trips(got)
    assert len(trips) == (3 if in_ns else 2)
    if in_ns:   # window start 07:59:59.9999996: pandas rounds it to 08:00:00 before int() truncates
        assert trips[1] == _ns(8, 0) // NS


def test_files_of_every_representation_take_the_fast_ways(tmp_path):
    """A file with INT64 timestamps of any unit and zone has usable statistics: when its readings lie wholly
    inside a trip it is aggregated without reading t. INT96 files have none and take the per-reading way."""
    root = tmp_path / "lake"
    config = load_config(build_lake(root, ["ns_utc", "us_copenhagen", "ms_naive", "int96"]))
    run = _DayRun(Lake(root), config, DAY, config.devices, Options())
    try:
        assert run.find_windows() > 0
        files = run._files(config.devices, IMU, (0,))
        whole, per_row = run._split_by_window(files)
        expected_whole = set()
        for file, dev in zip(files.files, files.devs, strict=True):
            t = _to_ns(pq.read_table(file, columns=["t"])["t"])
            inside = any(start <= t.min() and t.max() <= end for start, end in run._windows_by_dev.get(dev, []))
            if inside and pq.ParquetFile(file).schema.column(0).physical_type == "INT64":
                expected_whole.add(file)
        assert set(whole.files) == expected_whole
        whole_types = {str(pq.read_schema(f).field("t").type) for f in whole.files}
        assert len(whole_types) >= 2, whole_types     # more than one representation takes the fast way
        assert any(pq.ParquetFile(f).schema.column(0).physical_type == "INT96" for f in per_row.files)
    finally:
        run.close()


def _normalised_copy(root: Path, target: Path) -> None:
    """The lake with every t as timestamp[ns, tz=UTC]: the same instants in one representation."""
    shutil.copytree(root, target, ignore=shutil.ignore_patterns("aggregations"))
    for path in target.rglob("*.parquet"):
        table = pq.read_table(path)
        t = pa.array(_to_ns(table["t"]), pa.timestamp("ns", tz="UTC"))
        pq.write_table(table.set_column(0, "t", t), path)


def test_zones_and_naive_times_mixed_in_one_message(tmp_path):
    """Files of one message in different zones, naive or not: the seed cannot concatenate them (pandas
    refuses to mix zones) and writes nothing for such a device. Here every t is an instant (naive means
    UTC), so the result is the seed's on the same instants written in one representation."""
    root = tmp_path / "lake"
    config_path = build_lake(root, ["ns_utc", "us_copenhagen", "ms_naive", "int96"])
    # for the record: every device mixes zones in its trip identifier's files, so the seed writes no file
    assert run_baseline(root, config_path, DAY, DAY)[DAY] is None
    got = _ours(root, config_path)

    _normalised_copy(root, tmp_path / "normalised")
    expected = run_baseline(tmp_path / "normalised", config_path, DAY, DAY)[DAY]
    assert len(got) == len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)
