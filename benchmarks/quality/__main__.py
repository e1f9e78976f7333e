"""Data-quality benchmark: peak memory and time of the Great Expectations checkpoint on the first
load after ``iot generate --backfill 30`` (the load that ran out of memory when the checkpoint read
whole loads into pandas with COMPLETE results).

Side by side in one run, on throw-away servers, for the same first load:
  (a) ``quality.validate_raw_increment`` as it is (GX validating in SQL, counts only, the rows
      that break an expectation copied inside the database), in a fresh process;
  (b) what the former checkpoint did before GX even started: every table's increment read into
      pandas (``select * ... where _dlt_load_id = ...``), in a fresh process.
Reported: peak RSS (MB) and wall seconds of each, rows per table, the target (a) < 500 MB, the
load average; a bar chart beside the JSON.

    .venv/bin/python -m benchmarks.quality [--days 30] [--users 10] [--sensors 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS_DIR, start_throwaway_servers, timer, write_result

NAME = "quality"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TARGET_MB = 500

_CHECKPOINT_CHILD = """
import json, resource, time
t0 = time.perf_counter()
from quality.checkpoint import validate_raw_increment
summary = validate_raw_increment()
print(json.dumps({"seconds": time.perf_counter() - t0, "summary": summary,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# The former checkpoint's read (quality/checkpoint.py before the SQL version), without GX itself.
_PANDAS_CHILD = """
import json, resource, time
t0 = time.perf_counter()
import pandas as pd
from iot_core.connections import pg_connect
from quality.checkpoint import SUITES
rows = {}
with pg_connect("transformer") as conn:
    frames = []
    for table in SUITES:
        load = conn.execute(f"select max(_dlt_load_id) from raw.{table}").fetchone()[0]
        cur = conn.execute(f"select * from raw.{table} where _dlt_load_id = %s", (load,))
        df = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
        rows[table] = len(df)
        del df
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": rows,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--users", type=int, default=None, help="default: GENERATOR_USERS (10)")
    p.add_argument("--sensors", type=int, default=None, help="default: GENERATOR_SENSORS (5)")
    p.add_argument("--keep", action="store_true", help="keep the servers' directory")
    return p.parse_args(argv)


def _child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                         cwd=PROJECT_ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"stderr_lines": len(out.stderr.splitlines())}


def _plot(result: dict) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = ["GX checkpoint (SQL)", "former read into pandas\n(before GX)"]
    values = [result["checkpoint"]["peak_rss_mb"], result["pandas_read"]["peak_rss_mb"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(labels, values, color=["#2a7", "#c44"])
    ax.axhline(TARGET_MB, color="black", linestyle="--", linewidth=1, label=f"target {TARGET_MB} MB")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_title(f"first load after a {result['days']}-day backfill ({result['raw_rows_total']:,} raw rows)")
    ax.legend()
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.0f}", ha="center", va="bottom")
    fig.tight_layout()
    path = RESULTS_DIR / f"{NAME}.png"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    os.chmod(state, 0o755)
    settings, cluster, mongo = start_throwaway_servers(
        state, mongo=True, env={"MONGO_DB": "iot_bench"})
    try:
        generate = [sys.executable, "-m", "iot_cli.main", "generate", "--backfill", str(args.days)]
        if args.users is not None:
            generate += ["--users", str(args.users)]
        if args.sensors is not None:
            generate += ["--sensors", str(args.sensors)]
        print(f"generating {args.days} days ...", flush=True)
        with timer() as t_gen:
            subprocess.run(generate, check=True, env=os.environ.copy(), cwd=PROJECT_ROOT)
        print("extracting (first load) ...", flush=True)
        from dlt_pipelines import load_raw

        with timer() as t_load:
            loaded = load_raw(progress=False)
        print("checkpoint ...", flush=True)
        checkpoint = _child(_CHECKPOINT_CHILD)
        print("former pandas read ...", flush=True)
        pandas_read = _child(_PANDAS_CHILD)
        load_average = os.getloadavg()
        result = {
            "days": args.days, "generate_s": round(t_gen(), 1), "load_s": round(t_load(), 1),
            "raw_rows": loaded["loaded"], "raw_rows_total": sum(loaded["loaded"].values()),
            "checkpoint": {k: v for k, v in checkpoint.items() if k != "summary"},
            "checkpoint_summary": checkpoint["summary"],
            "pandas_read": pandas_read,
            "target_mb": TARGET_MB, "within_target": checkpoint["peak_rss_mb"] < TARGET_MB,
            "peak_ratio_new_to_former_read": round(checkpoint["peak_rss_mb"] / pandas_read["peak_rss_mb"], 3),
            "load_average_1_5_15": [round(x, 2) for x in load_average],
        }
        plot = _plot(result)
        if plot:
            result["plot"] = str(plot.relative_to(PROJECT_ROOT))
        write_result(NAME, result)
    finally:
        if mongo is not None:
            mongo.stop()
        cluster.stop(mode="fast")
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
