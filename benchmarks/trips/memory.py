"""Trip summary of one heavy device-day (about 1 GB of Parquet): peak memory of the project and the seed.

``python -m benchmarks.trips.memory [--hours 22.5] [--repeat 3] [--quick]``

One vehicle logs all day in six long trips (short parked stops between them), as a truck or a bus
does: ``CAN2_gnss_speed`` and ``CAN2_gnss_altitude`` at 1 Hz, ``CAN2_gnss_position`` at 50 Hz,
``CAN2_gnss_imu`` at 100 Hz (three accelerations and three angular rates), ``CAN1_wheel_speeds`` at
100 Hz (four wheels) and ``CAN1_engine`` at 100 Hz (six signals), one file per message and hour,
float64 values as a decoder writes them (about 1 GB for 22.5 hours of driving). The seed's script and ``iot trips`` summarise the day as fresh processes (the seed once,
the project ``--repeat`` times); the figures are each process's peak RSS (``ru_maxrss``), wall and CPU
time. The goal: the project within 1 GB (1024 MiB) of peak RSS. Both outputs are checked to hold the
same rows and values (rel. 1e-9). Results in ``benchmarks/results/trips_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import timer, write_result
from benchmarks.trips.shared import BASELINE, DAY, median_run, output, run_timed

DEVICE = "HEAVY001"
GOAL_MB = 1024
SPEED, ALTITUDE, POSITION, IMU = "CAN2_gnss_speed", "CAN2_gnss_altitude", "CAN2_gnss_position", "CAN2_gnss_imu"
WHEELS, ENGINE = "CAN1_wheel_speeds", "CAN1_engine"
# message -> (readings per second, signals)
MESSAGES = {
    SPEED: (1, ["Speed"]),
    ALTITUDE: (1, ["Altitude"]),
    POSITION: (50, ["Latitude", "Longitude"]),
    IMU: (100, ["AccelerationX", "AccelerationY", "AccelerationZ", "AngularRateX", "AngularRateY", "AngularRateZ"]),
    WHEELS: (100, ["WheelSpeedFL", "WheelSpeedFR", "WheelSpeedRL", "WheelSpeedRR"]),
    ENGINE: (100, ["EngineSpeed", "EngineTorque", "ThrottlePosition", "CoolantTemperature", "FuelRate",
                   "IntakeAirTemperature"]),
}
AGGREGATIONS = [(SPEED, ["Speed"], "avg"), (ALTITUDE, ["Altitude"], "max"), (POSITION, MESSAGES[POSITION][1], "min"),
                (IMU, MESSAGES[IMU][1], "avg"),
                (WHEELS, MESSAGES[WHEELS][1], "avg"), (ENGINE, MESSAGES[ENGINE][1], "max")]


def trips_of_the_day(hours: float) -> list[tuple[datetime, datetime]]:
    """Driving from 00:10 for ``hours`` hours in all, in six trips with 10-20 minute stops between them."""
    day = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    stops = [12, 20, 15, 18, 10]
    driving = timedelta(hours=hours) / 6
    start, trips = day + timedelta(minutes=10), []
    for stop in [*stops, 0]:
        end = min(start + driving, day + timedelta(hours=24) - timedelta(seconds=1))
        trips.append((start, end))
        start = end + timedelta(minutes=stop)
    return trips


def generate_heavy_day(root: Path, hours: float) -> dict:
    """Write the device-day; returns the lake's description (files, MB, rows per message)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2026)
    trips = trips_of_the_day(hours)
    rows = {}
    for message, (hz, signals) in MESSAGES.items():
        folder = root / DEVICE / message / DAY.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        step_ns = 1_000_000_000 // hz
        t = np.concatenate([np.arange(int(a.timestamp() * 1e9), int(b.timestamp() * 1e9), step_ns, dtype=np.int64)
                            for a, b in trips])
        rows[message] = len(t)
        hour = (t - int(trips[0][0].replace(hour=0, minute=0).timestamp() * 1e9)) // 3_600_000_000_000
        for h in np.unique(hour):
            part = t[hour == h]
            # decoded physical values: a slow signal plus sensor noise, float64
            columns = {s: np.round(np.sin(part / 7e11 + i) * 20 + rng.normal(0, 0.5, len(part)), 4)
                       for i, s in enumerate(signals)}
            table = pa.table({"t": pa.array(part, pa.timestamp("ns", tz="UTC")), **columns})
            pq.write_table(table, folder / f"{int(h):02d}0000.parquet")
    files = list(root.rglob("*.parquet"))
    return {"device": DEVICE, "trips": len(trips), "hours_driving": hours, "files": len(files),
            "parquet_mb": round(sum(p.stat().st_size for p in files) / 1e6, 1), "rows": rows,
            "rates_hz": {m: hz for m, (hz, _) in MESSAGES.items()}}


def config(path: Path) -> Path:
    path.write_text(json.dumps({
        "device_clusters": [{"devices": [DEVICE], "cluster": "trucks"}],
        "cluster_details": [{"trucks": {
            "trip_identifier": {"message": SPEED, "signal": ["Speed"]},
            "aggregations": [{"message": m, "signal": s, "aggregation": a} for m, s, a in AGGREGATIONS],
        }}],
    }))
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trips.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=22.5, help="hours of driving in the day")
    parser.add_argument("--repeat", type=int, default=3, help="runs of iot trips (median reported)")
    parser.add_argument("--quick", action="store_true", help="2 hours of driving, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.hours, args.repeat = 2.0, 1
    if not BASELINE.is_file():
        raise SystemExit(f"baseline script not found: {BASELINE}")
    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="bench-trips-memory-"))
    try:
        root = work / "lake"
        with timer() as took:
            lake = generate_heavy_day(root, args.hours)
        print(f"device-day: {lake['files']} files, {lake['parquet_mb']} MB in {took():.0f} s", flush=True)
        cfg, day = config(work / "aggregations.json"), DAY.isoformat()
        load_before = [round(x, 2) for x in os.getloadavg()]
        seed = run_timed("seed", [str(BASELINE), "--lake", str(root), "--config", str(cfg), "--start", day,
                                  "--end", day], work)
        expected = output(root)
        shutil.rmtree(root / "aggregations")
        print(f"seed script: peak RSS {seed['peak_rss_mb']} MB, {seed['wall_s']} s", flush=True)
        runs = []
        for attempt in range(args.repeat):
            runs.append(run_timed("project", ["--config", str(cfg), "--root", str(root), "--start", day], work))
            got = output(root)
            shutil.rmtree(root / "aggregations")
            print(f"iot trips run {attempt + 1}: peak RSS {runs[-1]['peak_rss_mb']} MB, {runs[-1]['wall_s']} s",
                  flush=True)
        load_after = [round(x, 2) for x in os.getloadavg()]
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)
        project = median_run(runs)
        peak = max(r["peak_rss_mb"] for r in runs)
        result = {
            "quick": args.quick, "lake": lake, "load_average_before": load_before, "load_average_after": load_after,
            "seed": seed, "project": project, "project_peak_rss_mb_max": peak, "rows": len(got),
            "same_rows_and_values": True,
            "memory_ratio": round(seed["peak_rss_mb"] / project["peak_rss_mb"], 1),
            "job_wall_ratio": round(seed["job_wall_s"] / project["job_wall_s"], 1),
            "goal": {"peak_rss_mb_at_most": GOAL_MB, "met": peak <= GOAL_MB},
        }
        print(f"heavy device-day ({lake['parquet_mb']} MB; load {load_before[0]} -> {load_after[0]}): peak RSS seed "
              f"{seed['peak_rss_mb']} MB, iot trips {project['peak_rss_mb']} MB (max {peak}); job wall "
              f"{seed['job_wall_s']} s against {project['job_wall_s']} s", flush=True)
        write_result("trips_memory", result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
