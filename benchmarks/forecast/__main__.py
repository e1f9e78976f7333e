"""Forecast benchmark (issues 6 and 15): honest accuracy on real data, speed of one cycle, freshness.

  (b) walk-forward accuracy (issue 15): every real series of ../shared/data (benchmarks/forecast/
      datasets.py) is written as a CSV of readings and run through `iot backtest --json`: the
      production preprocessing, training schedule (Mondays 00:00, 7 days), walk-forward tuning,
      candidates and selection, each day forecast by models trained only on earlier data. Per
      dataset and model: MAE per horizon as a ratio to persistence with a 95 % bootstrap interval
      over days, and the same for the selection (the system). Goal: the best candidate at most
      0.85 x persistence at h = 15 and the system at most 1.0 x, on every dataset. A plot of the
      ratios per horizon goes to benchmarks/results/forecast_walk_forward.png.
  (a) cycle: one forecast cycle (ml.forecasting.run_forecast: settle, choose, read the last
      minutes of stage.iaq_minutely, predict with every arm, COPY + upsert 15 rows per device)
      for 1,000 devices on a throw-away PostgreSQL with the MLflow SQL store, cold (model
      download) and warm. Baseline side by side: a per-device loop (one query, one predict call
      and one multi-row insert per device, the shape of seed 000's per-request Lambda). Goal: at
      most 5 s per cycle.
  (c) freshness (--freshness, needs `make up` running with the DAGs unpaused): probe devices write
      one reading a minute to MongoDB; time until it is in stage.stg_sensor_readings and until the
      first prediction issued from it, p50/p95. Goal: p95 under 30 s to stage, under 90 s to a prediction.

    .venv/bin/python -m benchmarks.forecast [--quick] [--datasets a,b] [--devices N] [--skip-cycle] [--skip-accuracy]
    .venv/bin/python -m benchmarks.forecast --freshness [--all-dags] [--minutes 30 --probes 5]
      (c) lives in benchmarks/forecast/freshness.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS_DIR, peak_rss_mb, start_throwaway_servers, timer, write_result
from benchmarks.forecast.datasets import DATASETS
from benchmarks.forecast.datasets import load as load_dataset

HORIZON = 15

NAME = "forecast"
GOAL_BEST_CANDIDATE_H15 = 0.85
GOAL_SYSTEM_H15 = 1.0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.forecast", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke size: 100 devices, small models, the two smallest datasets")
    p.add_argument("--datasets", default="", help="comma-separated subset of " + ",".join(DATASETS))
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--skip-cycle", action="store_true")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--freshness", action="store_true", help="only (c), against the running stack")
    p.add_argument("--minutes", type=float, default=30, help="(c) duration")
    p.add_argument("--probes", type=int, default=5, help="(c) probe devices")
    p.add_argument("--all-dags", action="store_true",
                   help="(c) with every DAG switched on and the batch DAGs triggered (benchmarks/forecast/freshness.py)")
    args = p.parse_args(argv)
    if args.quick:
        args.devices = min(args.devices, 100)
        args.minutes = min(args.minutes, 3)
    return args


# ---------------------------------------------------------------- (b) walk-forward accuracy on real data
def backtest_dataset(name: str, workdir: Path, quick: bool) -> dict:
    """One dataset through `iot backtest --json` (a subprocess, exactly as a user runs it)."""
    ds = DATASETS[name]
    frame = load_dataset(name)
    csv = workdir / f"{name}.csv"
    frame.assign(time=frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")).to_csv(csv, index=False)
    cmd = [sys.executable, "-m", "iot_cli.main", "backtest", "--csv", str(csv), "--time-column", "time",
           "--value-column", "value", "--device-column", "device_id", "--json"]
    if quick:
        cmd += ["--model-params", json.dumps({"lightgbm": {"n_estimators": 40}, "mlp": {"max_iter": 40}}),
                "--bootstrap", "500"]
    print(f"walk-forward {name}: {len(frame):,} readings of {frame['device_id'].nunique()} device(s)", flush=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with timer() as t:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)   # progress (stderr) passes through
    if done.returncode != 0:
        return {"error": f"iot backtest exited {done.returncode}", "command": " ".join(cmd)}
    result = json.loads(done.stdout)
    models = {n: {k: m[k] for k in ("ratio", "ratio_interval", "ratio_mean", "ratio_mean_interval", "mae",
                                    "points", "ratio_by_day")} for n, m in result["models"].items()}
    system = {k: result["system"][k] for k in ("ratio", "ratio_interval", "ratio_mean", "ratio_mean_interval",
                                               "mae", "ratio_by_day", "choices", "regret")}
    h = str(HORIZON)
    candidates = {n: m["ratio"][h] for n, m in models.items() if n != "persistence" and m["ratio"][h] is not None}
    best = min(candidates, key=candidates.get) if candidates else None
    out = {
        "dataset": {"measure": ds.measure, "unit": ds.unit, "cadence": ds.cadence, "note": ds.note,
                    "readings": len(frame), "devices": result["devices"]},
        "days_evaluated": result["days_evaluated"], "days": result["days"],
        "windows_evaluated": result["windows_evaluated"],
        "trainings": len(result["trainings"]), "training_params": [t["params"] for t in result["trainings"]],
        "persistence_mae": result["persistence_mae"], "models": models, "system": system,
        "best_candidate_h15": best, "best_candidate_ratio_h15": candidates.get(best),
        "system_ratio_h15": system["ratio"][h],
        "goal": {"best_candidate_h15_at_most": GOAL_BEST_CANDIDATE_H15, "system_h15_at_most": GOAL_SYSTEM_H15},
        "goal_met": {"best_candidate": best is not None and candidates[best] <= GOAL_BEST_CANDIDATE_H15,
                     "system": system["ratio"][h] is not None and system["ratio"][h] <= GOAL_SYSTEM_H15},
        "seconds": round(t(), 1), "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"  {name}: best candidate {best} {candidates.get(best)} at h=15, system {system['ratio'][h]} "
          f"({t():.0f} s)", flush=True)
    return out


def write_dataset_result(name: str, result: dict, quick: bool) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{NAME}_walk_forward_{name}.json"
    payload = {"benchmark": f"{NAME}_walk_forward", "dataset_name": name, "quick": quick,
               "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def stored_walk_forward() -> dict:
    """Every dataset's newest result file, in the order of DATASETS."""
    out = {}
    for name in DATASETS:
        path = RESULTS_DIR / f"{NAME}_walk_forward_{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    return out


def walk_forward(names: list[str], quick: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="iot-bench-backtest-"))
    try:
        out = {}
        for name in names:
            try:
                out[name] = backtest_dataset(name, workdir, quick)
            except FileNotFoundError as e:
                out[name] = {"skipped": str(e)}
            # one file per dataset as soon as it is done: a long run stopped half-way keeps its results
            write_dataset_result(name, out[name], quick)
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def plot_walk_forward(results: dict, path: Path) -> Path | None:
    """One panel per dataset: the ratio to persistence per horizon of every model and of the
    system, with the bootstrap interval shaded."""
    done = {n: r for n, r in results.items() if "models" in r}
    if not done:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(done))
    rows = (len(done) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    hs = list(range(1, HORIZON + 1))
    for ax, (name, r) in zip(axes.flat, done.items(), strict=False):
        series = {**{n: m for n, m in r["models"].items() if n != "persistence"}, "SYSTEM": r["system"]}
        for i, (label, m) in enumerate(series.items()):
            have = [h for h in hs if m["ratio"][str(h)] is not None]
            if not have:
                continue
            ys = [m["ratio"][str(h)] for h in have]
            lo = [m["ratio_interval"][str(h)][0] for h in have]
            hi = [m["ratio_interval"][str(h)][1] for h in have]
            style = {"color": "black", "lw": 2.2} if label == "SYSTEM" else {"color": f"C{i}", "lw": 1.2}
            ax.plot(have, ys, marker="o" if len(have) < 5 else None, label=label, **style)
            ax.fill_between(have, lo, hi, alpha=0.12, color=style["color"])
        ax.axhline(1.0, color="grey", ls="--", lw=1)
        ax.axhline(GOAL_BEST_CANDIDATE_H15, color="tab:green", ls=":", lw=1)
        ax.set_title(f"{name} ({r['days_evaluated']} days)", fontsize=9)
        ax.set_xlabel("minutes ahead")
        ax.set_ylabel("MAE / persistence MAE")
        ax.set_ylim(0.4, 1.5)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(done):]:
        ax.axis("off")
    fig.suptitle("walk-forward backtest: ratio to persistence (shaded: 95 % bootstrap over days)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- (a) one cycle for N devices
def synthetic_minutes(devices: int, minutes: int, end: datetime, seed: int = 1) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(minutes)
    phase = rng.integers(0, 90, devices)[:, None]
    noise = np.cumsum(rng.normal(0, 1.0, (devices, minutes)), axis=1) * 0.3
    values = 120 + 30 * np.sin(2 * np.pi * (t[None, :] + phase) / 90) + noise
    times = [end - timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    return times, values


def start_warehouse(state_dir: Path):
    from iot_core.connections import pg_url
    from iot_core.settings import get_settings

    settings, cluster, _ = start_throwaway_servers(state_dir)
    os.environ["MLFLOW_TRACKING_URI"] = pg_url("mlflow", settings.mlflow_db, driver="postgresql+psycopg2")
    get_settings.cache_clear()
    return get_settings(), cluster


def fill_stage(devices: int, minutes: int, end: datetime) -> None:
    from iot_core.connections import pg_connect

    times, values = synthetic_minutes(devices, minutes, end)
    with pg_connect("transformer") as conn, conn.cursor() as cur:
        cur.execute("create table if not exists stage.iaq_minutely (time timestamptz not null, device_id text not null,"
                    " iaq double precision, is_interpolated boolean not null default false,"
                    " primary key (device_id, time))")
        cur.execute("truncate stage.iaq_minutely")
        with cur.copy("copy stage.iaq_minutely (time, device_id, iaq, is_interpolated) from stdin") as copy:
            for d in range(devices):
                device = f"bench-{d:05d}"
                for ts, v in zip(times, values[d], strict=True):
                    copy.write_row((ts, device, float(v), False))


def baseline_per_device_loop(issue_minute: datetime, version: str) -> dict:
    """The naive shape: per device one query, one predict call, one insert."""
    from iot_core.connections import pg_connect
    from ml.registry import load_model

    model = load_model(version)
    rows = 0
    with pg_connect("transformer") as conn, conn.cursor() as cur:
        cur.execute("create table if not exists ml.predictions_baseline (like ml.predictions including all)")
        cur.execute("truncate ml.predictions_baseline")
        cur.execute("select distinct device_id from stage.iaq_minutely")
        devices = [r[0] for r in cur.fetchall()]
        with timer() as t:
            for device in devices:
                cur.execute("select time, iaq from stage.iaq_minutely where device_id = %s and time <= %s"
                            " order by time desc limit 60", (device, issue_minute))
                hist = cur.fetchall()[::-1]
                if len(hist) < 60:
                    continue
                pred = np.asarray(model.predict(np.array([[v for _, v in hist]])))[0]
                t0 = hist[-1][0]
                cur.executemany(
                    "insert into ml.predictions_baseline values (%s, %s, %s, %s, %s, %s, %s)"
                    " on conflict (device_id, time, measure_name) do update set value = excluded.value",
                    [(t0 + timedelta(minutes=h), device, f"iaq~{h}", float(pred[h - 1]), "baseline", version, t0)
                     for h in range(1, 16)])
                rows += 15
                conn.commit()
            seconds = t()
    return {"devices": len(devices), "rows": rows, "seconds": round(seconds, 3)}


def cycle(devices: int, quick: bool, state_dir: Path) -> dict:
    import mlflow

    from ml import registry
    from ml.forecasting import run_forecast
    from ml.training import train_candidates

    settings, cluster = start_warehouse(state_dir)
    try:
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        registry.configure(settings)
        artifacts = state_dir / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(registry.EXPERIMENT, artifact_location=artifacts.as_uri())
        # train on 2 days of 5 devices (the speed of a cycle does not depend on the training size)
        fill_stage(5, 2 * 1440, end)
        with timer() as t_train:
            results = train_candidates(end=end + timedelta(minutes=1), days=3, stride=2,
                                       params={"lightgbm": {"n_estimators": 50 if quick else 200},
                                               "mlp": {"max_iter": 50 if quick else 200}})
        fill_stage(devices, 75, end)
        runs = []
        for k in range(4):     # cold (every arm's model downloaded), then warm cycles
            issue = end - timedelta(minutes=3 - k)
            with timer() as t:
                summary = run_forecast(issue)
            runs.append({"model": summary["model_name"], "devices": summary["devices_predicted"],
                         "rows": summary["rows_written"], "seconds": round(t(), 3), "parts": summary["seconds"]})
            print(f"cycle {issue:%H:%M} {summary['model_name']:<12} {summary['devices_predicted']} devices "
                  f"{t():.2f} s {summary['seconds']}", flush=True)
        base_version = next(x.version for x in results if x.candidate == "lightgbm")
        baseline = baseline_per_device_loop(end, base_version)
        warm = min(r["seconds"] for r in runs[1:])
        return {
            "devices": devices, "train_seconds": round(t_train(), 2), "arms_predicted_per_cycle": len(results),
            "cycles": runs,
            "max_cycle_seconds": max(r["seconds"] for r in runs),
            "baseline_per_device_loop_lightgbm": baseline,
            "speedup_vs_per_device_loop_lightgbm": round(baseline["seconds"] / warm, 2),
            "note": "a cycle predicts with every arm (each is scored later); the baseline loop with one model",
            "goal_seconds_at_most": 5, "goal_met": max(r["seconds"] for r in runs) <= 5,
        }
    finally:
        cluster.stop(mode="fast")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    result: dict = {"quick": args.quick}
    if args.freshness:
        from benchmarks.forecast.freshness import run_freshness

        return run_freshness(args, result)
    if not args.skip_accuracy:
        names = [n for n in args.datasets.split(",") if n] or (
            ["room_climate_humidity", "room_climate_temperature"] if args.quick else list(DATASETS))
        result["walk_forward"] = walk_forward(names, args.quick)
        # the plot shows every dataset with a result file, so re-running one dataset keeps the others
        png = plot_walk_forward(stored_walk_forward(), RESULTS_DIR / "forecast_walk_forward.png")
        result["walk_forward_plot"] = str(png) if png else None
        table = {n: (r.get("best_candidate_h15"), r.get("best_candidate_ratio_h15"), r.get("system_ratio_h15"))
                 for n, r in result["walk_forward"].items()}
        print("walk-forward at h=15 (dataset: best candidate, its ratio, system ratio):", table, flush=True)
    if not args.skip_cycle:
        state_dir = Path(tempfile.mkdtemp(prefix="iot-bench-forecast-"))
        os.chmod(state_dir, 0o755)
        try:
            result["cycle"] = cycle(args.devices, args.quick, state_dir)
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_result(NAME, result)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
