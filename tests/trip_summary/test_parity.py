"""The project's trip summary gives the seed script's rows and values on the same lake."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from trips.config import load_config
from trips.lake import Lake
from trips.summary import run_days

from .conftest import DAY1, DAY2, DAY3, run_baseline

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def both_outputs(edge_lake):
    root, config_path = edge_lake
    baseline = run_baseline(root, config_path, DAY1, DAY3)
    lake = Lake(root)
    results = run_days(lake, load_config(config_path), DAY1, DAY3)
    ours = {}
    for day, rows, path, _ in results:
        ours[day] = lake.read_table(lake.output_relpath(day)).to_pandas() if path else None
        assert (path is None) == (rows == 0)
    return baseline, ours


def test_same_days_have_output(both_outputs):
    baseline, ours = both_outputs
    assert {d for d, df in baseline.items() if df is not None} == {DAY1, DAY2}
    assert {d for d, df in ours.items() if df is not None} == {DAY1, DAY2}


@pytest.mark.parametrize("day", [DAY1, DAY2])
def test_same_rows_and_values(both_outputs, day):
    baseline, ours = both_outputs
    expected, got = baseline[day], ours[day]
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected) > 0
    # same order as the seed (device, trip, aggregation, signal), values within 1e-9 relative
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)
    for column in ("Count", "TripStart", "TripEnd"):
        assert got[column].dtype == "int64"


def _epoch(day, hh, mm, ss) -> int:
    return int(datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC).timestamp())


def _trips(df: pd.DataFrame, device: str) -> list[tuple[int, int]]:
    rows = df[df.DeviceID == device]
    return sorted(set(zip(rows.TripStart, rows.TripEnd, strict=True)))


def test_edge_cases_are_covered(both_outputs):
    """The lake really holds the edge cases the parity must cover (guards the fixture itself)."""
    _, ours = both_outputs
    day1, day2 = ours[DAY1], ours[DAY2]
    trips = _trips(day1, "EDGE0001")
    # single reading at 06:00:00.250; 07:00 trip that survives an exactly-10-minute gap; 07:30 trip
    assert len(trips) == 3
    single_start, single_end = trips[0]
    # window edges: first reading - 1 s (05:59:59.250, truncated) .. next trip's first reading - 2 s
    assert single_start == _epoch(DAY1, 5, 59, 59) and single_end == _epoch(DAY1, 6, 59, 58)
    assert trips[1][0] == _epoch(DAY1, 6, 59, 59) and trips[1][1] == _epoch(DAY1, 7, 29, 58)
    # the last trip ends 1 s after its last reading (07:31:59.001)
    assert trips[2] == (_epoch(DAY1, 7, 29, 59), _epoch(DAY1, 7, 32, 0))
    assert trips[1][1] - trips[1][0] > 19 * 60
    # altitude has no rows in the single-reading trip: a row anyway, value NaN, count 0
    alt = day1[(day1.DeviceID == "EDGE0001") & (day1.Signal == "Altitude") & (day1.TripStart == single_start)]
    assert len(alt) == 1 and alt.Count.iloc[0] == 0 and math.isnan(alt.Value.iloc[0])
    # IMU folder missing on day 1 -> no IMU rows; day 2 has IMU but an empty altitude folder
    assert not ((day1.DeviceID == "EDGE0001") & (day1.Message == "CAN2_gnss_imu")).any()
    edge2 = day2[day2.DeviceID == "EDGE0001"]
    assert set(edge2.Message) == {"CAN2_gnss_speed", "CAN2_gnss_imu"}
    # AccelerationZ exists in one of the two IMU files only: counted over the rows that have it
    counts = edge2.set_index("Signal").Count
    assert counts["AccelerationZ"] < counts["AccelerationX"]
    # cluster2: integer speed summed; the second trip has no speed values -> sum 0
    sums = day1[(day1.DeviceID == "EDGE0002") & (day1.Signal == "Speed")].sort_values("TripStart")
    assert len(sums) == 2 and sums.Value.iloc[0] > 0 and sums.Value.iloc[1] == 0 and sums.Count.iloc[1] == 0
    assert set(day1[day1.DeviceID == "EDGE0002"].Cluster) == {"cluster2"}
    # devices outside the configuration or without data give no rows
    for df in (day1, day2):
        assert not df.DeviceID.isin(["NOCLUSTR", "GHOST001"]).any()


def test_a_file_spanning_several_trips_matches_the_seed(tmp_path):
    """One IMU file holds three trips, readings before the first, in the parked gaps (part of the
    windows), in the 1-second slots before the next trip and after the last (in no window): each
    reading finds its trip among the three windows the file's statistics say it overlaps. The altitude
    file's t is INT96, whose statistics are not trusted: its readings look among all the windows."""
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trips.lakegen import ALTITUDE, IMU, SPEED, seed_config
    from trips.summary import Options, _DayRun

    from .conftest import _ms, _series, _write

    root = tmp_path / "lake"
    lake, rng = Lake(root), np.random.default_rng(3)
    starts = [_ms(DAY1, 14, 0), _ms(DAY1, 14, 15), _ms(DAY1, 14, 30)]
    t_speed = np.concatenate([_series(s, s + 180_000) for s in starts])
    _write(lake, "SPAN0001", SPEED, DAY1, "140000", t_speed, Speed=rng.uniform(0, 90, len(t_speed)))
    t_imu = _series(_ms(DAY1, 13, 59, 30), _ms(DAY1, 14, 40), 250)   # 13:59:30 .. 14:40, every 0.25 s
    _write(lake, "SPAN0001", IMU, DAY1, "140000", t_imu, AccelerationX=rng.normal(0, 1, len(t_imu)),
           AccelerationY=rng.normal(0, 1, len(t_imu)), AccelerationZ=rng.normal(9.8, 0.1, len(t_imu)))
    t_alt = _series(_ms(DAY1, 13, 59), _ms(DAY1, 14, 36))
    folder = root / "SPAN0001" / ALTITUDE / "2026" / "11" / "20"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"t": pa.array(t_alt, pa.timestamp("ms")), "Altitude": rng.uniform(0, 50, len(t_alt))}),
                   folder / "140000.parquet", use_deprecated_int96_timestamps=True)
    config_path = tmp_path / "aggregations.json"
    config_path.write_text(json.dumps(seed_config(["SPAN0001"])))
    config = load_config(config_path)

    run = _DayRun(lake, config, DAY1, config.devices, Options())
    try:
        assert run.find_windows() == 3
        for message in (IMU, ALTITUDE):
            whole, per_row = run._split_by_window(run._files(config.devices, message, (0,)))
            assert not whole and [len(run._windows_of(f, 0)) for f in per_row.files] == [3]
    finally:
        run.close()

    expected = run_baseline(root, config_path, DAY1, DAY1)[DAY1]
    run_days(lake, config, DAY1, DAY1)
    got = lake.read_table(lake.output_relpath(DAY1)).to_pandas()
    assert len(got) == len(expected) == 3 * 5
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)
