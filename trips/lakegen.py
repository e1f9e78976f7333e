"""Synthetic vehicle-logger lake for tests and benchmarks.

Each vehicle makes a few trips a day with parked gaps between them (the logger is off while
parked, so the gap in ``t`` is what separates trips). During a trip it logs:

- ``CAN2_gnss_speed``: ``Speed`` (km/h) at 1 Hz: accelerations and braking, stops at junctions;
- ``CAN2_gnss_altitude``: ``Altitude`` (m) at 1 Hz: a smooth climb and descent around a base height;
- ``CAN2_gnss_imu``: ``AccelerationX`` (longitudinal, from the speed profile), ``AccelerationY``
  (lateral, cornering) and ``AccelerationZ`` (gravity + road noise), m/s², at 10 Hz.

Files follow the loggers' layout, one file per device, message and hour:
``ROOT/<device>/<message>/<yyyy>/<mm>/<dd>/<hh>0000.parquet``; ``t`` is a millisecond timestamp
(naive, meaning UTC, or tz-aware UTC).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa

from trips.lake import Lake, day_path

log = logging.getLogger(__name__)

SPEED, ALTITUDE, IMU = "CAN2_gnss_speed", "CAN2_gnss_altitude", "CAN2_gnss_imu"


@dataclass(frozen=True)
class LakeSpec:
    devices: int = 10
    start: date = date(2026, 11, 20)
    days: int = 1
    trips_per_day: int = 4
    min_trip_minutes: float = 15
    max_trip_minutes: float = 75
    speed_hz: float = 1.0
    imu_hz: float = 10.0
    tz_aware: bool = False
    seed: int = 7


def device_ids(count: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    while len(ids) < count:
        candidate = f"{int(rng.integers(0, 2**32)):08X}"
        if candidate not in ids:
            ids.append(candidate)
    return ids


def seed_config(devices: list[str], cluster: str = "cluster1") -> dict:
    """The seed's aggregations.json (cluster1's details) for the given devices."""
    return {
        "device_clusters": [{"devices": list(devices), "cluster": cluster}],
        "cluster_details": [{cluster: {
            "trip_identifier": {"message": SPEED, "signal": ["Speed"]},
            "aggregations": [
                {"message": SPEED, "signal": ["Speed"], "aggregation": "avg"},
                {"message": ALTITUDE, "signal": ["Altitude"], "aggregation": "max"},
                {"message": IMU, "signal": ["AccelerationX", "AccelerationY", "AccelerationZ"], "aggregation": "avg"},
            ],
        }}],
    }


def _trip_starts(rng, day_start_ms: int, spec: LakeSpec) -> list[tuple[int, int]]:
    """(start_ms, duration_ms) of the day's trips, separated by parked gaps of 20 min or more."""
    trips, cursor = [], day_start_ms + int(rng.uniform(5.5, 8) * 3_600_000)
    day_end = day_start_ms + 86_400_000 - 60_000
    for _ in range(spec.trips_per_day):
        duration = int(rng.uniform(spec.min_trip_minutes, spec.max_trip_minutes) * 60_000)
        if cursor + duration > day_end:
            break
        trips.append((cursor, duration))
        cursor += duration + int(rng.uniform(20, 180) * 60_000)
    return trips


def _speed_profile(rng, n: int) -> np.ndarray:
    """km/h at 1 Hz: smoothed random accelerations, clipped to 0..130, with a few stops."""
    accel = rng.normal(0, 0.6, n)  # m/s^2
    accel = np.convolve(accel, np.ones(15) / 15, mode="same")
    speed = np.clip(np.cumsum(accel * 3.6) + 30, 0, 130)
    speed[:5] = np.linspace(0, speed[5], 5)
    for stop in rng.integers(0, max(n - 40, 1), size=max(n // 600, 1)):
        speed[stop:stop + int(rng.integers(10, 40))] = 0.0
    speed[-3:] = 0.0
    return speed


def _vehicle_day(rng, day_start_ms: int, spec: LakeSpec) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Timestamps (ms) and signals of every message for one vehicle and day."""
    out = {SPEED: ([], {"Speed": []}), ALTITUDE: ([], {"Altitude": []}),
           IMU: ([], {"AccelerationX": [], "AccelerationY": [], "AccelerationZ": []})}
    base_altitude = rng.uniform(0, 600)
    for start, duration in _trip_starts(rng, day_start_ms, spec):
        n = max(int(duration / 1000 * spec.speed_hz), 1)
        t = start + (np.arange(n) * 1000 / spec.speed_hz).astype(np.int64) + rng.integers(0, 5, n)
        speed = _speed_profile(rng, n)
        out[SPEED][0].append(t)
        out[SPEED][1]["Speed"].append(speed)
        altitude = base_altitude + np.cumsum(rng.normal(0, 0.3, n)) + 20 * np.sin(np.linspace(0, 3, n))
        out[ALTITUDE][0].append(t + 3)
        out[ALTITUDE][1]["Altitude"].append(altitude)
        m = max(int(duration / 1000 * spec.imu_hz), 1)
        t_imu = start + (np.arange(m) * 1000 / spec.imu_hz).astype(np.int64)
        longitudinal = np.gradient(np.interp(np.arange(m) / spec.imu_hz, np.arange(n) / spec.speed_hz, speed) / 3.6,
                                   1 / spec.imu_hz)
        out[IMU][0].append(t_imu)
        out[IMU][1]["AccelerationX"].append(longitudinal + rng.normal(0, 0.05, m))
        out[IMU][1]["AccelerationY"].append(np.convolve(rng.normal(0, 0.8, m), np.ones(20) / 20, mode="same"))
        out[IMU][1]["AccelerationZ"].append(9.81 + rng.normal(0, 0.15, m))
    return {msg: (np.concatenate(ts) if ts else np.array([], np.int64),
                  {k: (np.concatenate(v) if v else np.array([])) for k, v in sig.items()})
            for msg, (ts, sig) in out.items()}


def write_hourly(lake: Lake, device: str, message: str, day: date, t_ms: np.ndarray,
                 signals: dict[str, np.ndarray], tz_aware: bool = False) -> int:
    """Write one message's readings of a day as one Parquet file per hour; returns the file count."""
    t_type = pa.timestamp("ms", tz="UTC" if tz_aware else None)
    day_start_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    hours = (t_ms - day_start_ms) // 3_600_000
    written = 0
    for hour in np.unique(hours):
        sel = hours == hour
        table = pa.table({"t": pa.array(t_ms[sel], t_type), **{k: pa.array(v[sel]) for k, v in signals.items()}})
        lake.write_atomic(table, f"{device}/{message}/{day_path(day)}/{int(hour):02d}0000.parquet")
        written += 1
    return written


def generate_lake(lake: Lake, spec: LakeSpec, progress: bool = False) -> list[str]:
    """Write the synthetic lake; returns the device ids (deterministic for a given spec)."""
    devices = device_ids(spec.devices, spec.seed)
    iterator = devices
    if progress:
        from tqdm import tqdm

        iterator = tqdm(devices, desc="generating lake", unit="device")
    files = 0
    for index, device in enumerate(iterator):
        rng = np.random.default_rng([spec.seed, index])
        for d in range(spec.days):
            day = spec.start + timedelta(days=d)
            day_start_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
            for message, (t_ms, signals) in _vehicle_day(rng, day_start_ms, spec).items():
                files += write_hourly(lake, device, message, day, t_ms, signals, spec.tz_aware)
    log.info("generated %d devices x %d days, %d files under %s", len(devices), spec.days, files, lake.root)
    return devices


def main(argv: list[str] | None = None) -> int:
    """``python -m trips.lakegen --root DIR [--devices N] [--days D] [--start YYYY-MM-DD]``: a demo lake
    plus its aggregations.json (written next to the lake as ``<root>.aggregations.json``)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m trips.lakegen", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="lake root: a directory or s3://bucket/prefix")
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=LakeSpec.start)
    parser.add_argument("--seed", type=int, default=LakeSpec.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = LakeSpec(devices=args.devices, days=args.days, start=args.start, seed=args.seed)
    devices = generate_lake(Lake(args.root), spec, progress=True)
    config_path = f"{args.root.rstrip('/').replace('s3://', '').replace('/', '_')}.aggregations.json" \
        if args.root.startswith("s3://") else f"{args.root.rstrip('/')}.aggregations.json"
    with open(config_path, "w") as fh:
        json.dump(seed_config(devices), fh, indent=1)
    print(f"lake: {args.root} ({len(devices)} devices x {args.days} days); configuration: {config_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
