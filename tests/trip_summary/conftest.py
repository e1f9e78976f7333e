"""Fixtures of the trip-summary tests: a small lake with the edge cases, and the seed's script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from iot_core.settings import PROJECT_ROOT
from trips.lake import Lake, day_path
from trips.lakegen import ALTITUDE, IMU, SPEED, LakeSpec, generate_lake, seed_config

SHARED_DIR = Path(os.environ.get("IOT_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
BASELINE = SHARED_DIR / "baselines" / "seed003_trip_summary.py"

DAY1, DAY2, DAY3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)


def _ms(day: date, hh: int, mm: int, ss: float = 0.0) -> int:
    return int(datetime(day.year, day.month, day.day, hh, mm, tzinfo=UTC).timestamp() * 1000 + round(ss * 1000))


def _series(start_ms: int, end_ms: int, step_ms: int = 1000) -> np.ndarray:
    return np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)


def _write(lake: Lake, device: str, message: str, day: date, name: str, t_ms, tz_aware=False, **signals):
    t_type = pa.timestamp("ms", tz="UTC" if tz_aware else None)
    table = pa.table({"t": pa.array(np.asarray(t_ms, dtype=np.int64), t_type),
                      **{k: pa.array(v) for k, v in signals.items()}})
    lake.write_atomic(table, f"{device}/{message}/{day_path(day)}/{name}.parquet")


def build_edge_lake(root: Path) -> dict:
    """Generated vehicles plus hand-made edge cases; returns the aggregations.json content."""
    lake = Lake(root)
    generated = generate_lake(lake, LakeSpec(devices=3, days=2, trips_per_day=3, min_trip_minutes=4,
                                             max_trip_minutes=12, imu_hz=2, seed=11))
    rng = np.random.default_rng(5)

    # EDGE0001: a trip of a single reading; a gap of exactly 10 minutes (same trip); a gap of 10 min
    # + 1 ms (new trip); null speeds; IMU missing on day 1; an empty altitude folder on day 2; an IMU
    # file without AccelerationZ on day 2.
    single = np.array([_ms(DAY1, 6, 0, 0.25)])
    part_a = _series(_ms(DAY1, 7, 0), _ms(DAY1, 7, 5))
    part_b = _series(_ms(DAY1, 7, 15), _ms(DAY1, 7, 20))          # exactly 10 min after part_a
    part_c = _series(_ms(DAY1, 7, 30, 0.001), _ms(DAY1, 7, 32))   # 10 min + 1 ms after part_b
    t_speed = np.concatenate([single, part_a, part_b, part_c])
    speed = rng.uniform(0, 90, len(t_speed))
    speed[rng.choice(len(speed), 40, replace=False)] = np.nan
    _write(lake, "EDGE0001", SPEED, DAY1, "060000", t_speed[t_speed < _ms(DAY1, 7, 0)], Speed=speed[:1])
    _write(lake, "EDGE0001", SPEED, DAY1, "070000", t_speed[1:], Speed=speed[1:])
    t_alt = _series(_ms(DAY1, 7, 0, 0.5), _ms(DAY1, 7, 32))
    _write(lake, "EDGE0001", ALTITUDE, DAY1, "070000", t_alt, Altitude=rng.uniform(100, 120, len(t_alt)))
    t2 = _series(_ms(DAY2, 10, 0), _ms(DAY2, 10, 10))
    _write(lake, "EDGE0001", SPEED, DAY2, "100000", t2, Speed=rng.uniform(0, 90, len(t2)))
    (root / "EDGE0001" / ALTITUDE / day_path(DAY2)).mkdir(parents=True)
    t_imu = _series(_ms(DAY2, 10, 0), _ms(DAY2, 10, 10), 200)
    half = len(t_imu) // 2
    imu_x = rng.normal(0, 1, half)
    imu_x[[3, 17, 40]] = np.nan   # NaN inside a file wholly within a trip: not counted, skipped
    _write(lake, "EDGE0001", IMU, DAY2, "100000a", t_imu[:half], AccelerationX=imu_x,
           AccelerationY=rng.normal(0, 1, half), AccelerationZ=rng.normal(9.8, 0.1, half))
    imu_y = rng.normal(0, 1, len(t_imu) - half)
    imu_y[5] = np.inf   # an infinite reading counts and makes the average infinite, as in pandas
    _write(lake, "EDGE0001", IMU, DAY2, "100000b", t_imu[half:], AccelerationX=rng.normal(0, 1, len(t_imu) - half),
           AccelerationY=imu_y)
    # readings before the day's first trip (in no window), and a file inside the trip with a null t
    t_early = _series(_ms(DAY2, 9, 0), _ms(DAY2, 9, 5), 200)
    _write(lake, "EDGE0001", IMU, DAY2, "090000", t_early, AccelerationX=rng.normal(0, 1, len(t_early)),
           AccelerationY=rng.normal(0, 1, len(t_early)))
    t_null = pa.array([_ms(DAY2, 10, 4, 0.1), None, _ms(DAY2, 10, 4, 0.3)], pa.timestamp("ms"))
    lake.write_atomic(pa.table({"t": t_null, "AccelerationX": [0.5, 99.0, 0.7], "AccelerationY": [0.1, 99.0, 0.2]}),
                      f"EDGE0001/{IMU}/{day_path(DAY2)}/100000d.parquet")

    # EDGE0002 (cluster2, tz-aware): trips identified by altitude; an integer Speed that is null for the
    # whole second trip (sum of nothing = 0); no IMU at all; nothing on day 2.
    t_a = np.concatenate([_series(_ms(DAY1, 12, 0), _ms(DAY1, 12, 10)), _series(_ms(DAY1, 13, 0), _ms(DAY1, 13, 5))])
    _write(lake, "EDGE0002", ALTITUDE, DAY1, "120000", t_a, tz_aware=True, Altitude=rng.uniform(0, 50, len(t_a)))
    speed_int = pa.array([int(v) if t < _ms(DAY1, 12, 30) else None
                          for v, t in zip(rng.integers(0, 120, len(t_a)), t_a, strict=True)], pa.int32())
    _write(lake, "EDGE0002", SPEED, DAY1, "120000", t_a, tz_aware=True, Speed=speed_int)

    # NOCLUSTR: data of a device the configuration does not list (ignored by both).
    _write(lake, "NOCLUSTR", SPEED, DAY1, "080000", part_a, Speed=rng.uniform(0, 90, len(part_a)))

    config = seed_config(generated + ["EDGE0001", "GHOST001"])
    config["device_clusters"].append({"devices": ["EDGE0002"], "cluster": "cluster2"})
    config["cluster_details"].append({"cluster2": {
        "trip_identifier": {"message": ALTITUDE, "signal": ["Altitude"]},
        "aggregations": [
            {"message": SPEED, "signal": ["Speed"], "aggregation": "sum"},
            {"message": ALTITUDE, "signal": ["Altitude"], "aggregation": "min"},
            {"message": IMU, "signal": ["AccelerationX"], "aggregation": "sum"},
        ],
    }})
    return config


def run_baseline(root: Path, config_path: Path, start: date, end: date,
                 keep: Path | None = None) -> dict[date, pd.DataFrame | None]:
    """Run the seed's script and return its output per day (None: no file), then remove the output
    (after copying its files into ``keep``, when given)."""
    if not BASELINE.is_file():
        pytest.skip(f"baseline script not found at {BASELINE}")
    result = subprocess.run([sys.executable, str(BASELINE), "--lake", str(root), "--config", str(config_path),
                             "--start", start.isoformat(), "--end", end.isoformat()],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = {}
    day = start
    while day <= end:
        path = root / "aggregations" / "tripsummary" / day_path(day) / f"{day:%Y%m%d}.parquet"
        out[day] = pd.read_parquet(path) if path.exists() else None
        day += timedelta(days=1)
    if keep is not None and (root / "aggregations").exists():
        shutil.copytree(root / "aggregations", keep, dirs_exist_ok=True)
    shutil.rmtree(root / "aggregations", ignore_errors=True)
    return out


@pytest.fixture(scope="module")
def edge_lake(tmp_path_factory):
    """(lake root, config path) of the edge-case lake, fresh per test module."""
    root = tmp_path_factory.mktemp("trips") / "lake"
    config = build_edge_lake(root)
    config_path = root.parent / "aggregations.json"
    config_path.write_text(json.dumps(config, indent=1))
    return root, config_path


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free port (AWS test credentials set for the module)."""
    from moto.server import ThreadedMotoServer

    from iot_cli.localstack.process import free_port

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


def upload_lake(endpoint: str, root: Path, bucket: str, prefix: str = "lake") -> int:
    """Copy a local lake's Parquet files into a new bucket; returns how many."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    uploaded = 0
    for path in root.rglob("*.parquet"):
        if "aggregations" not in path.relative_to(root).parts:
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
            uploaded += 1
    return uploaded
