"""Damaged and drifting input: unreadable files are skipped with their reason, the rest of their device
is summarised, and the other devices are untouched.

The seed script drops a device's whole message (or the whole device, when the file is among the trip
identifier's) as soon as one file of it cannot be read. The project skips just that file, so its
result is the seed's on the lake without the damaged files.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trips.config import load_config
from trips.lake import Lake, day_path
from trips.lakegen import ALTITUDE, IMU, SPEED, LakeSpec, generate_lake, seed_config
from trips.summary import run_days

from .conftest import DAY1, _ms, _series, _write, run_baseline

pytestmark = pytest.mark.timeout(300)


def _folder(root, device, message):
    return root / device / message / day_path(DAY1)


def _corrupt_a_data_page(path, column: str) -> None:
    """Overwrite bytes inside the first data page of a column: the footer stays valid."""
    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(column))
    start = chunk.data_page_offset + 24                      # past the page header
    data = bytearray(path.read_bytes())
    data[start:start + 200] = b"\xab" * 200
    path.write_bytes(bytes(data))


def build_damaged_lake(root):
    """Three good vehicles; DRIFT001 whose files drift (an integer signal that becomes a float, signals
    missing from some files, an extra column, a file without rows); BROKEN01 with damaged files.
    Returns (config path, {damaged file: words its reason must contain})."""
    lake = Lake(root)
    good = generate_lake(lake, LakeSpec(devices=4, trips_per_day=2, imu_hz=2, seed=12))
    broken = good.pop()
    shutil.move(root / broken, root / "BROKEN01")
    rng = np.random.default_rng(8)

    t1, t2 = _series(_ms(DAY1, 7, 0), _ms(DAY1, 7, 59, 59)), _series(_ms(DAY1, 8, 0), _ms(DAY1, 8, 40))
    _write(lake, "DRIFT001", SPEED, DAY1, "070000", t1, Speed=pa.array(rng.integers(0, 120, len(t1)), pa.int32()))
    _write(lake, "DRIFT001", SPEED, DAY1, "080000", t2, Speed=rng.uniform(0, 120, len(t2)))   # int -> float
    _write(lake, "DRIFT001", ALTITUDE, DAY1, "070000", t1, Altitude=rng.uniform(0, 50, len(t1)))
    _write(lake, "DRIFT001", ALTITUDE, DAY1, "080000", t2, Quality=rng.integers(0, 3, len(t2)))  # no Altitude
    _write(lake, "DRIFT001", IMU, DAY1, "070000", t1, AccelerationX=rng.normal(0, 1, len(t1)),
           AccelerationY=rng.normal(0, 1, len(t1)), AccelerationZ=rng.normal(9.8, 0.1, len(t1)))
    _write(lake, "DRIFT001", IMU, DAY1, "080000", t2, AccelerationX=pa.array(rng.normal(0, 1, len(t2)), pa.float32()),
           AccelerationY=rng.normal(0, 1, len(t2)), Temperature=rng.normal(20, 1, len(t2)))  # float32, no Z
    _write(lake, "DRIFT001", IMU, DAY1, "090000", np.array([], dtype=np.int64), AccelerationX=np.array([]))

    damaged = {}
    speed, alt, imu = (_folder(root, "BROKEN01", m) for m in (SPEED, ALTITUDE, IMU))
    (speed / "235900_empty.parquet").write_bytes(b"")
    damaged[speed / "235900_empty.parquet"] = "too small"
    a_file = sorted(imu.glob("*.parquet"))[0]
    (imu / "235900_truncated.parquet").write_bytes(a_file.read_bytes()[: a_file.stat().st_size // 2])
    damaged[imu / "235900_truncated.parquet"] = "parquet"
    (alt / "235900_text.parquet").write_text("timestamp,altitude\n2026-11-20T23:59:00,12.5\n")
    damaged[alt / "235900_text.parquet"] = "parquet"
    bad_page = sorted(imu.glob("*.parquet"))[len(list(imu.glob("*.parquet"))) // 2]
    _corrupt_a_data_page(bad_page, "AccelerationX")
    damaged[bad_page] = ""
    t_int = _series(_ms(DAY1, 23, 59), _ms(DAY1, 23, 59, 30))
    pq.write_table(pa.table({"t": pa.array(t_int, pa.int64()), "Altitude": rng.uniform(0, 9, len(t_int))}),
                   alt / "235900_epoch_ms.parquet")
    damaged[alt / "235900_epoch_ms.parquet"] = "not a timestamp"

    config_path = root.parent / "aggregations.json"
    config_path.write_text(json.dumps(seed_config([*good, "DRIFT001", "BROKEN01"])))
    return config_path, damaged


@pytest.fixture(scope="module")
def damaged_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged") / "lake"
    config_path, damaged = build_damaged_lake(root)
    return root, config_path, damaged


def test_damaged_files_are_skipped_with_their_reason(damaged_lake, tmp_path):
    root, config_path, damaged = damaged_lake
    seed_on_damaged = run_baseline(root, config_path, DAY1, DAY1)[DAY1]

    lake = Lake(root)
    [result] = run_days(lake, load_config(config_path), DAY1, DAY1)
    assert result.report.complete
    assert set(result.report.skipped_files) == {str(p) for p in damaged}
    for path, words in damaged.items():
        assert words.lower() in result.report.skipped_files[str(path)].lower(), result.report.skipped_files
    got = pd.read_parquet(result.path)
    # the day's file says what it left out
    footer = pq.ParquetFile(result.path).metadata.metadata
    assert json.loads(footer[b"trips:skipped_files"]) == result.report.skipped_files
    assert b"trips:failed_devices" not in footer

    # the truth: the seed on the lake without the damaged files
    clean = tmp_path / "clean"
    shutil.copytree(root, clean, ignore=shutil.ignore_patterns("aggregations"))
    for path in damaged:
        (clean / path.relative_to(root)).unlink()
    expected = run_baseline(clean, config_path, DAY1, DAY1)[DAY1]
    assert len(got) == len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)

    # for the record: the seed lost BROKEN01's speed (its trips) with one empty file, and so the device
    assert "BROKEN01" in set(got.DeviceID) and "BROKEN01" not in set(seed_on_damaged.DeviceID)
    # and the drifting device is summarised by both alike, over the files that hold each signal
    drift = got[got.DeviceID == "DRIFT001"].set_index("Signal")
    assert drift.loc["Speed", "Count"] == 3600 + 2401 and drift.loc["AccelerationZ", "Count"] == 3600
    assert drift.loc["Altitude", "Count"] == 3600


def test_cli_lists_the_skipped_files_and_succeeds(damaged_lake):
    from click.testing import CliRunner

    from iot_cli.commands.trips import command

    root, config_path, damaged = damaged_lake
    result = CliRunner().invoke(command, ["--config", str(config_path), "--root", str(root), "--start", "2026-11-20"])
    assert result.exit_code == 0, result.output
    for path in damaged:
        assert f"skipped {path}: " in result.output
