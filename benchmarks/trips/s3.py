"""Trip summary on an S3 lake with an object store's latency: the project against the seed's script.

``python -m benchmarks.trips.s3 [--devices 50] [--latency-ms 20] [--repeat 3] [--quick]``

1. The benchmark lake (as ``python -m benchmarks.trips``: speed and altitude at 1 Hz, IMU at 10 Hz,
   4 trips a day, one file per hour) is generated for ``--devices`` vehicles and uploaded to a moto S3
   server on this machine.
2. A proxy in front of it (``benchmarks.trips.s3_proxy``) waits ``--latency-ms`` before each request,
   about what Amazon S3 takes to a GET's first byte within a region, and counts requests and bytes.
3. The seed's script reads the same lake through pyarrow's S3 filesystem (its code unchanged; its
   file-system calls on ``s3://`` paths are routed to pyarrow, see ``_timed``), once; then ``iot trips``
   ``--repeat`` times (medians). Each runs as a fresh process; the figures: wall and CPU time of the
   job and of the whole process, requests by method and bytes read through the proxy. Both outputs are
   checked to hold the same rows and values (rel. 1e-9). Results in ``benchmarks/results/trips_s3.json``
   and a plot ``trips_s3.png``.
4. The fetch floor: every object fetched once, 32 at a time, through the same proxy by a fresh process.
   A local moto server hands out far fewer MB/s than S3 does (a single Python process, sharing
   two cores with everything else here): that floor, not the engine, bounds the job's wall time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from benchmarks.common import RESULTS_DIR, write_result
from benchmarks.trips.s3_proxy import DelayProxy
from benchmarks.trips.shared import BASELINE, DAY, PROJECT_ROOT, config_file, generate, median_run, run_timed

BUCKET, PREFIX = "bench-lake", "lake"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def _moto_server(port: int):
    """A moto S3 server in a process of its own (in this one it would share the GIL with the proxy)."""
    import socket

    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _upload(client, root: Path) -> int:
    files = [p for p in root.rglob("*.parquet")]

    def put(path: Path) -> int:
        client.upload_file(str(path), BUCKET, f"{PREFIX}/{path.relative_to(root).as_posix()}")
        return path.stat().st_size

    with ThreadPoolExecutor(16) as pool:
        return sum(pool.map(put, files))


_FETCH_FLOOR = r"""
import json, resource, sys, time
from concurrent.futures import ThreadPoolExecutor

import pyarrow.fs as pafs

from trips.s3_objects import botocore_client

endpoint, root, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
fs = pafs.S3FileSystem(endpoint_override=endpoint.split("://")[1], scheme="http", region="us-east-1")
infos = [i for i in fs.get_file_info(pafs.FileSelector(root, recursive=True)) if i.type == pafs.FileType.File]
client = botocore_client(endpoint, "us-east-1")(threads)


def fetch(info):
    if client is None:   # as the job without botocore: a HEAD, then the GET
        with fs.open_input_file(info.path) as file:
            return len(file.read_at(info.size, 0))
    bucket, _, key = info.path.partition("/")   # as the job: one GET (the listing gave the size)
    return len(client.get_object(Bucket=bucket, Key=key)["Body"].read())


start = time.perf_counter()
with ThreadPoolExecutor(threads) as pool:
    size = sum(pool.map(fetch, infos))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"objects": len(infos), "bytes": size, "wall_s": round(time.perf_counter() - start, 3),
                  "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "head_per_object": client is None}))
"""


def _fetch_floor(endpoint: str, threads: int) -> dict:
    """Every object of the lake fetched once, ``threads`` at a time, by a fresh process (as the job fetches
    them: one GET each with botocore, else pyarrow's HEAD and GET): what the server needs merely to hand
    out the lake's bytes, with the latency."""
    done = subprocess.run([sys.executable, "-c", _FETCH_FLOOR, endpoint, f"{BUCKET}/{PREFIX}", str(threads)],
                          capture_output=True, text=True, check=True, env={**os.environ, **CREDENTIALS},
                          cwd=PROJECT_ROOT)
    return json.loads(done.stdout)


def _day_output(client):
    import pandas as pd

    key = f"{PREFIX}/aggregations/tripsummary/{DAY:%Y/%m/%d}/{DAY:%Y%m%d}.parquet"
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.delete_object(Bucket=BUCKET, Key=key)
    return pd.read_parquet(io.BytesIO(body))


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed, project = result["seed"], result["project"]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, key, scale) in zip(axes, (("job wall time, s", "job_wall_s", 1),
                                               ("requests", "requests", 1),
                                               ("bytes read, MB", "bytes_read", 1e-6)), strict=True):
        values = [seed[key] * scale, project[key] * scale]
        bars = ax.bar(["seed script", "iot trips"], values, color=["#b0b0b0", "#2f6f9f"])
        ax.set_yscale("log")
        ax.set_title(title)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(f"{value:,.3g}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom")
    fig.suptitle(f"S3 lake, {result['lake']['devices']} devices x 1 day, {result['latency_ms']} ms per request: "
                 f"{result['ratios']['job_wall']}x job wall time", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trips.s3", description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="wait added to every S3 request")
    parser.add_argument("--repeat", type=int, default=3, help="runs of iot trips (median reported)")
    parser.add_argument("--quick", action="store_true", help="4 devices, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.repeat = 4, 1
    if not BASELINE.is_file():
        raise SystemExit(f"baseline script not found: {BASELINE}")

    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    work = Path(tempfile.mkdtemp(prefix="bench-trips-s3-"))
    try:
        result = _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    write_result("trips_s3", result)
    _plot(result, RESULTS_DIR / "trips_s3.png")
    return 0


def _run(args, work: Path) -> dict:
    import boto3
    import pandas as pd

    from iot_cli.localstack.process import free_port
    from trips.lakegen import LakeSpec

    with _moto_server(free_port()) as moto_url:
        devices, lake_info = generate(work / "lake", LakeSpec(devices=args.devices, start=DAY, days=1))
        config = config_file(work, devices)
        client = boto3.client("s3", endpoint_url=moto_url)
        client.create_bucket(Bucket=BUCKET)
        uploaded = _upload(client, work / "lake")
        print(f"uploaded {uploaded / 1e6:.0f} MB to the moto S3 server", flush=True)
        root, day = f"s3://{BUCKET}/{PREFIX}", DAY.isoformat()
        with DelayProxy(moto_url, latency_s=args.latency_ms / 1000) as proxy:
            env = {"BENCH_S3_ENDPOINT": proxy.url, "TRIPS_S3_ENDPOINT": proxy.url, **CREDENTIALS}
            load_before = [round(x, 2) for x in os.getloadavg()]
            proxy.reset()
            seed = run_timed("seed-s3", [str(BASELINE), "--lake", root, "--config", str(config), "--start", day,
                                         "--end", day], work, env) | proxy.stats()
            expected = _day_output(client)
            print(f"seed script: {seed['wall_s']} s, {seed['requests']} requests, {seed['bytes_read'] / 1e6:.0f} MB",
                  flush=True)
            floor = _fetch_floor(proxy.url, 32)
            print(f"fetch floor: {floor['objects']} objects, {floor['bytes'] / 1e6:.0f} MB in {floor['wall_s']} s",
                  flush=True)
            runs = []
            for attempt in range(args.repeat):
                proxy.reset()
                runs.append(run_timed("project", ["--config", str(config), "--root", root, "--start", day,
                                                  "--s3-endpoint", proxy.url], work, env) | proxy.stats())
                got = _day_output(client)
                print(f"iot trips run {attempt + 1}: {runs[-1]['wall_s']} s, {runs[-1]['requests']} requests, "
                      f"{runs[-1]['bytes_read'] / 1e6:.0f} MB", flush=True)
            load_after = [round(x, 2) for x in os.getloadavg()]
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9, atol=0)
        project = median_run([{k: v for k, v in r.items() if k != "by_method"} for r in runs])
        project["by_method"] = runs[-1]["by_method"]
        result = {
            "quick": args.quick, "lake": {**lake_info, "uploaded_mb": round(uploaded / 1e6, 1)},
            "latency_ms": args.latency_ms, "load_average_before": load_before, "load_average_after": load_after,
            "seed": seed, "project": project, "rows": len(got), "same_rows_and_values": True,
            "ratios": {"job_wall": round(seed["job_wall_s"] / project["job_wall_s"], 1),
                       "end_to_end_wall": round(seed["wall_s"] / project["wall_s"], 1),
                       "job_cpu": round(seed["job_cpu_s"] / project["job_cpu_s"], 1),
                       "requests": round(seed["requests"] / project["requests"], 1),
                       "bytes_read": round(seed["bytes_read"] / project["bytes_read"], 1)},
            "goal": {"ratio": "job wall time, seed script / iot trips", "value": 50},
            # every object fetched once, 32 at a time, through the same proxy: what the server needs
            # merely to hand out the lake's bytes; the job cannot be faster, whatever the engine
            "fetch_floor": {**floor, "job_over_floor_wall": round(project["job_wall_s"] / floor["wall_s"], 1),
                            "best_possible_job_wall_ratio": round(seed["job_wall_s"] / floor["wall_s"], 1)},
        }
        result["goal"]["met"] = result["ratios"]["job_wall"] >= 50
        print(f"S3, {args.devices} devices, {args.latency_ms} ms per request (load {load_before[0]} -> {load_after[0]}):"
              f" job wall {seed['job_wall_s']} s against {project['job_wall_s']} s = {result['ratios']['job_wall']}x;"
              f" requests {seed['requests']} against {project['requests']}; MB read {seed['bytes_read'] / 1e6:.0f}"
              f" against {project['bytes_read'] / 1e6:.0f}", flush=True)
        return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
