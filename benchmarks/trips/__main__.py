"""Trip summary: the project (DuckDB) against seed 003's script on the same generated lake.

``python -m benchmarks.trips [--quick] [--devices 50] [--scaling 10,25,50,100]``

1. One lake of vehicle loggers (speed and altitude at 1 Hz, IMU at 10 Hz, 4 trips a day, one file
   per hour) is generated in a temporary folder for the largest size needed.
2. Head to head (both as fresh processes, one after the other, same lake and configuration of
   ``--devices`` devices x 1 day): the seed's script vs ``iot trips``; wall time, peak RSS of each
   process (``wait4``), and a check that both wrote the same rows and values (rel. tol. 1e-9).
3. Scaling: the project's in-process time for each device count (best of 2) on the same lake.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.common import timer, write_result

DAY = date(2026, 11, 20)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BASELINE = Path(os.environ.get("IOT_SHARED_DIR", PROJECT_ROOT.parent / "shared")) / "baselines" / "seed003_trip_summary.py"


def _run_process(cmd: list[str]) -> dict:
    """Run a command; its wall time and peak RSS (of that process alone)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=PROJECT_ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[1]} failed: {stderr[-2000:]}")
    return {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def _config_file(folder: Path, devices: list[str]) -> Path:
    from trips.lakegen import seed_config

    path = folder / f"aggregations_{len(devices)}.json"
    path.write_text(json.dumps(seed_config(devices)))
    return path


def _output(root: Path):
    import pandas as pd

    return pd.read_parquet(root / "aggregations" / "tripsummary" / DAY.strftime("%Y/%m/%d") / f"{DAY:%Y%m%d}.parquet")


def head_to_head(root: Path, config: Path) -> dict:
    import pandas as pd

    day = DAY.isoformat()
    baseline = _run_process([sys.executable, str(BASELINE), "--lake", str(root), "--config", str(config),
                             "--start", day, "--end", day])
    expected = _output(root)
    shutil.rmtree(root / "aggregations")
    project = _run_process([sys.executable, "-m", "iot_cli.main", "trips", "--config", str(config),
                            "--root", str(root), "--start", day])
    got = _output(root)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)
    return {"baseline": baseline, "project": project, "rows": len(got), "same_rows_and_values": True,
            "speed_ratio": round(baseline["wall_s"] / project["wall_s"], 1),
            # CPU seconds are steadier than wall time on a machine shared with other jobs
            "cpu_ratio": round(baseline["cpu_s"] / project["cpu_s"], 1),
            "memory_ratio": round(baseline["peak_rss_mb"] / project["peak_rss_mb"], 2)}


def scaling(root: Path, devices: list[str], sizes: list[int]) -> list[dict]:
    import resource

    from trips.config import parse_config
    from trips.lake import Lake
    from trips.lakegen import seed_config
    from trips.summary import summarise_day

    lake, rows = Lake(root), []
    for n in sizes:
        config = parse_config(seed_config(devices[:n]))
        best = best_cpu = None
        for _ in range(2):
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            with timer() as elapsed:
                table = summarise_day(lake, config, DAY)
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
            best = min(best or elapsed(), elapsed())
            best_cpu = min(best_cpu or cpu, cpu)
        rows.append({"devices": n, "seconds": round(best, 3), "ms_per_device": round(1000 * best / n, 1),
                     "cpu_s": round(best_cpu, 3), "summary_rows": table.num_rows})
        print(f"scaling: {n} devices {best:.3f} s", flush=True)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trips", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument("--devices", type=int, default=50, help="devices in the head-to-head run")
    parser.add_argument("--scaling", default="10,25,50,100", help="device counts for the scaling run")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.scaling = 4, "2,4"
    sizes = sorted({int(s) for s in args.scaling.split(",")})
    if not BASELINE.is_file():
        raise SystemExit(f"baseline script not found: {BASELINE}")

    sys.path.insert(0, str(PROJECT_ROOT))
    from trips.lake import Lake
    from trips.lakegen import LakeSpec, generate_lake

    work = Path(tempfile.mkdtemp(prefix="bench-trips-"))
    try:
        spec = LakeSpec(devices=max([args.devices, *sizes]), start=DAY, days=1)
        with timer() as gen_time:
            devices = generate_lake(Lake(work / "lake"), spec, progress=True)
        lake_mb = sum(p.stat().st_size for p in (work / "lake").rglob("*.parquet")) / 1e6
        files = sum(1 for _ in (work / "lake").rglob("*.parquet"))
        print(f"lake: {len(devices)} devices, {files} files, {lake_mb:.0f} MB in {gen_time():.0f} s", flush=True)

        duel = head_to_head(work / "lake", _config_file(work, devices[:args.devices]))
        print(f"head to head ({args.devices} devices): baseline {duel['baseline']['wall_s']} s, "
              f"project {duel['project']['wall_s']} s, ratio {duel['speed_ratio']}x", flush=True)
        scale = scaling(work / "lake", devices, sizes)
        first, last = scale[0], scale[-1]
        base_cpu_per_device = duel["baseline"]["cpu_s"] / args.devices
        result = {
            "quick": args.quick,
            "lake": {"devices": len(devices), "days": 1, "files": files, "parquet_mb": round(lake_mb, 1),
                     "trips_per_device": spec.trips_per_day, "speed_hz": spec.speed_hz, "imu_hz": spec.imu_hz},
            "head_to_head": {"devices": args.devices, **duel},
            "scaling": scale,
            # 1.0 = perfectly linear; < 1: fixed costs are amortised as the lake grows
            "scaling_time_ratio_per_device": round(last["ms_per_device"] / first["ms_per_device"], 2),
            "scaling_cpu_ratio_per_device": round((last["cpu_s"] / last["devices"]) / (first["cpu_s"] / first["devices"]), 2),
            # the engine alone (in-process, no interpreter start-up) against the baseline process, per device
            "engine_cpu_ratio_at_head_to_head_size": next(
                (round(base_cpu_per_device / (r["cpu_s"] / r["devices"]), 1) for r in scale if r["devices"] == args.devices),
                None),
            "goal_speed_ratio": 50,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        }
        write_result("trips", result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
