"""Helpers the trip benchmarks share: the lakes, the seed script, and one tool run as a fresh process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.common import timer

DAY = date(2026, 11, 20)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BASELINE = Path(os.environ.get("IOT_SHARED_DIR", PROJECT_ROOT.parent / "shared")) / "baselines" / "seed003_trip_summary.py"


def run_timed(tool: str, args: list[str], work: Path, env: dict[str, str] | None = None) -> dict:
    """One fresh process running a tool (see _timed): outside and inside figures."""
    result_path = work / f"timed-{tool}.json"
    env = {**os.environ, **(env or {}), "BENCH_LAUNCHED_AT": repr(time.time())}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.trips._timed", str(result_path), tool, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=PROJECT_ROOT, env=env)
    stderr = proc.stderr.read().decode(errors="replace")  # read before waiting: a full pipe would block
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{tool} failed: {stderr[-2000:]}")
    inside = json.loads(result_path.read_text())
    return {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            # peak_rss_mb comes from inside (VmHWM); ru_maxrss of a child spawned by vfork also holds
            # the high-water mark of this (parent) process's memory at the spawn, folded in by exec()
            "peak_rss_mb_ru_maxrss": round(usage.ru_maxrss / 1024, 1), **inside}


def median_run(runs: list[dict]) -> dict:
    keys = runs[0].keys()
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in keys} | {"runs": len(runs)}


def config_file(folder: Path, devices: list[str]) -> Path:
    from trips.lakegen import seed_config

    path = folder / f"aggregations_{len(devices)}.json"
    path.write_text(json.dumps(seed_config(devices)))
    return path


def output(root: Path):
    import pandas as pd

    return pd.read_parquet(root / "aggregations" / "tripsummary" / DAY.strftime("%Y/%m/%d") / f"{DAY:%Y%m%d}.parquet")


def generate(folder: Path, spec) -> tuple[list[str], dict]:
    from trips.lake import Lake
    from trips.lakegen import generate_lake

    with timer() as gen_time:
        devices = generate_lake(Lake(folder), spec, progress=True)
    lake_mb = sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 1e6
    files = sum(1 for _ in folder.rglob("*.parquet"))
    print(f"lake {folder.name}: {len(devices)} devices, {files} files, {lake_mb:.0f} MB in {gen_time():.0f} s",
          flush=True)
    return devices, {"devices": len(devices), "days": 1, "files": files, "parquet_mb": round(lake_mb, 1),
                     "trips_per_device": spec.trips_per_day, "speed_hz": spec.speed_hz, "imu_hz": spec.imu_hz}
