"""Alerts benchmark (issue 19).

  (c) scale: one evaluation pass of 10 rules (every kind) over 10,000 devices on a throw-away
      PostgreSQL whose stage tables dbt built: 90 minutes of history, then one new minute of
      readings and forecasts for every device, evaluated as the DAG does each minute (median of
      several minutes). Side by side: the floor, one SELECT of that minute's new readings through
      the same index. Goal: at most 5 s per pass.
  (b) early warning: the real room-occupancy CO2 (UCI set, ../shared/data) replayed minute by
      minute as one device: the project's models (ml.training) are trained on the first 60 % of
      the days, then for each minute of the rest the forecast cycle (ml.forecasting) runs and the
      alert rules are evaluated. Per crossing of the limit: how many minutes before the threshold
      rule (and before the crossing itself) the forecast rule warned; forecast alerts with no
      crossing in the 15 minutes after they fired are counted as false.
  (a) latency (--latency, against `make up` with iot_raw_extract, iot_stage_transform and
      iot_alerts unpaused and ALERT_RULES_FILE=benchmarks/alerts/latency_rules.yml, the shipped
      rules plus the probe rule): probe devices write readings to MongoDB that breach a `for: 0`
      threshold rule; seconds from each write to its alert event in ops.alert_events, p50 / p95.
      Goal: p95 at most 60 s (stretch 30 s).

    .venv/bin/python -m benchmarks.alerts [--quick] [--devices N] [--skip-scale] [--skip-replay]
    .venv/bin/python -m benchmarks.alerts --latency [--minutes 20 --probes 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks.common import peak_rss_mb, start_throwaway_servers, timer, write_result

NAME = "alerts"
SHARED_DATA = Path(os.environ.get("IOT_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared")) / "data"
IMG_DIR = Path(__file__).resolve().parents[2] / "docs" / "img"

SCALE_RULES = """
rules:
  - {id: co2-high, kind: threshold, measure: co2, above: 1000, for: 10m, hysteresis: 50, scope: {kind: air_quality}}
  - {id: iaq-high, kind: threshold, measure: iaq, above: 150, for: 5m, hysteresis: 10, scope: {kind: air_quality}}
  - {id: device-silent, kind: no_data, for: 10m, scope: {kind: air_quality}}
  - {id: iaq-forecast-high, kind: forecast, measure: iaq, above: 150, within: 15m, hysteresis: 10}
  - {id: too-warm, kind: threshold, measure: temperature, above: 28, for: 5m, hysteresis: 0.5}
  - {id: too-dry, kind: threshold, measure: humidity, below: 20, for: 5m, keep_firing_for: 5m}
  - {id: too-humid, kind: threshold, measure: humidity, above: 70, for: 10m, severity: info}
  - {id: co2-rising, kind: rate, measure: co2, above: 40, over: 5m, for: 2m}
  - {id: iaq-odd, kind: anomaly, measure: iaq, window: 60m, z: 5, min_points: 20, min_deviation: 20}
  - {id: co2-hq, kind: threshold, measure: co2, above: 1500, scope: {building: [b00, b01, b02]}}
"""
SCALE_MEASURES = ("co2", "iaq", "temperature", "humidity")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.alerts", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke size: 500 devices, 2 passes, a short replay")
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--passes", type=int, default=5, help="(c) steady passes (median taken)")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--skip-replay", action="store_true")
    p.add_argument("--latency", action="store_true", help="only (a), against the running stack")
    p.add_argument("--minutes", type=float, default=20, help="(a) duration")
    p.add_argument("--probes", type=int, default=3, help="(a) probe devices")
    args = p.parse_args(argv)
    if args.quick:
        args.devices = min(args.devices, 500)
        args.passes = min(args.passes, 2)
        args.minutes = min(args.minutes, 3)
    return args


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- shared set-up
def build_stage(settings, devices: list[tuple]) -> None:
    """raw tables with the device registry, dbt's stage models (empty readings), the ml tables."""
    from dbt_project.runner import build
    from iot_core.connections import pg_connect
    from ml.schema import ensure_schema
    from tests.dbt_project.raw_fixture import create_raw_tables

    with pg_connect("loader", settings=settings) as conn:
        create_raw_tables(conn, drop=True)
        with conn.cursor() as cur, cur.copy("copy raw.devices (_id, device_id, kind, building, floor, room,"
                                            " manufacturer_name, model, installed_at, active, history,"
                                            " _ingested_at, _dlt_load_id) from stdin") as copy:
            for device_id, building, floor, room in devices:
                copy.write_row((device_id, device_id, "air_quality", building, floor, room, "Acme", "m1",
                                datetime(2026, 1, 1, tzinfo=UTC), True, "[]", datetime.now(UTC), "bench"))
        conn.commit()
    with pg_connect("transformer", settings=settings) as conn:
        ensure_schema(conn)
    build(["tag:stage"], settings=settings, command="run")


def copy_readings(settings, rows) -> int:
    from iot_core.connections import pg_connect

    n = 0
    with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
        with cur.copy("copy stage.stg_sensor_readings (time, device_id, measure_name, value, _ingested_at)"
                      " from stdin") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        conn.commit()
    return n


def copy_forecasts(settings, rows) -> None:
    from iot_core.connections import pg_connect

    with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
        with cur.copy("copy ml.predictions (time, device_id, measure_name, value, model_name, model_version,"
                      " issued_at) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()


# ---------------------------------------------------------------- (c) scale
class Fleet:
    """Readings of N devices: most normal, some breaching each rule, a few silent, drifting slowly."""

    def __init__(self, n: int, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.ids = [f"bench-{d:05d}" for d in range(n)]
        self.base = {"co2": rng.normal(650, 120, n).clip(420, None), "iaq": rng.normal(80, 25, n).clip(10, None),
                     "temperature": rng.normal(22.5, 1.5, n), "humidity": rng.normal(45, 10, n).clip(5, 95)}
        hot = rng.random(n) < 0.05                        # 5 % of the rooms are stuffy
        self.base["co2"][hot] += 600
        self.base["iaq"][hot] += 90
        self.silent = rng.random(n) < 0.01                # 1 % stop sending after the history
        self.rng = rng

    def minute(self, t: datetime, k: int) -> dict[str, np.ndarray]:
        n = len(self.ids)
        return {m: b * (1 + 0.03 * np.sin(k / 30)) + self.rng.normal(0, 0.02 * b.mean(), n)
                for m, b in self.base.items()}

    def rows(self, t: datetime, k: int, skip_silent: bool):
        values = self.minute(t, k)
        ingested = t + timedelta(seconds=20)
        for m in SCALE_MEASURES:
            for i, device in enumerate(self.ids):
                if skip_silent and self.silent[i]:
                    continue
                yield (t, device, m, float(values[m][i]), ingested)

    def forecast_rows(self, issued: datetime):
        iaq = self.base["iaq"]
        for i, device in enumerate(self.ids):
            if self.silent[i]:
                continue
            for h in range(1, 16):
                yield (issued + timedelta(minutes=h), device, f"iaq~{h}", float(iaq[i] + 2.5 * h), "ridge", "1", issued)


def scale(devices: int, passes: int, state_dir: Path) -> dict:
    from alerts.evaluate import evaluate
    from alerts.rules import parse_rules
    from iot_core.connections import pg_connect

    settings, cluster, _ = start_throwaway_servers(state_dir)
    try:
        settings = settings.model_copy(update={"alert_lookback_minutes": 10})
        fleet = Fleet(devices)
        registry = [(d, f"b{i % 50:02d}", str(i % 7), f"r{i % 40}") for i, d in enumerate(fleet.ids)]
        with timer() as t_setup:
            build_stage(settings, registry)
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            history = 90
            start = now - timedelta(minutes=history)
            n = 0
            for k in range(history):
                n += copy_readings(settings, fleet.rows(start + timedelta(minutes=k), k, skip_silent=False))
                if k % 15 == 0:
                    print(f"scale: history {k}/{history} minutes, {n:,} readings", flush=True)
            copy_forecasts(settings, fleet.forecast_rows(now - timedelta(minutes=1)))
            with pg_connect("superuser", settings=settings, autocommit=True) as conn:
                conn.execute("vacuum analyze stage.stg_sensor_readings")
                conn.execute("vacuum analyze ml.predictions")
        print(f"scale: set-up {t_setup():.0f} s ({n:,} readings)", flush=True)
        rules = parse_rules(SCALE_RULES, "bench-rules")
        with timer() as t_first:
            first = evaluate(as_of=now - timedelta(seconds=30), settings=settings, ruleset=rules)
        print(f"scale: first pass (state for every rule x device, 10 minutes looked back) {t_first():.2f} s, "
              f"{first['observations']:,} observations", flush=True)
        steady, floors, details = [], [], []
        for p in range(passes):
            t = now + timedelta(minutes=p)
            copy_readings(settings, fleet.rows(t, history + p, skip_silent=True))
            copy_forecasts(settings, fleet.forecast_rows(t))
            # the floor: one read of the new minute through the same _ingested_at index
            with pg_connect("transformer", settings=settings) as conn, timer() as t_floor:
                rows = conn.execute("select device_id, measure_name, time, value from stage.stg_sensor_readings"
                                    " where _ingested_at > %s", (t - timedelta(seconds=10),)).fetchall()
            load = load_average()
            with timer() as t_pass:
                summary = evaluate(as_of=t + timedelta(seconds=30), settings=settings, ruleset=rules)
            steady.append(t_pass())
            floors.append(t_floor())
            details.append({"seconds": round(t_pass(), 3), "floor_seconds": round(t_floor(), 3),
                            "new_rows": len(rows), "observations": summary["observations"],
                            "transitions": summary["transitions"], "load_average": load,
                            "per_rule_seconds": {k: v.get("seconds") for k, v in summary["per_rule"].items()}})
            print(f"scale: pass {p + 1}/{passes}: {t_pass():.2f} s ({summary['observations']:,} observations, "
                  f"transitions {summary['transitions']}), floor {t_floor():.2f} s, load {load}", flush=True)
        with pg_connect("transformer", settings=settings) as conn:
            alerts = dict(conn.execute("select state, count(*) from ops.alert_events group by state").fetchall())
        median = statistics.median(steady)
        return {"devices": devices, "rules": len(rules.rules), "history_minutes": history, "readings": n,
                "first_pass_seconds": round(t_first(), 3), "first_pass_observations": first["observations"],
                "steady_pass_seconds_median": round(median, 3), "steady_pass_seconds": [round(x, 3) for x in steady],
                "floor_seconds_median": round(statistics.median(floors), 3),
                "ratio_pass_to_floor": round(median / statistics.median(floors), 1),
                "passes": details, "alerts_by_state": alerts,
                "goal_seconds_at_most": 5, "goal_met": median <= 5, "peak_rss_mb": round(peak_rss_mb(), 1)}
    finally:
        cluster.stop(mode="fast")


# ---------------------------------------------------------------- (b) early warning on real CO2
def room_occupancy_minutes() -> pd.DataFrame:  # noqa: F821 - pandas imported lazily
    """The UCI room-occupancy CO2 (the forecast benchmark's reading of the file) as a one-minute
    series, like stage.iaq_minutely: minute means, gaps of at most 5 missing minutes linearly
    interpolated, longer gaps left out."""
    import pandas as pd

    from benchmarks.forecast.datasets import room_occupancy_co2

    readings = room_occupancy_co2(SHARED_DATA / "room_occupancy_estimation")
    minute = readings.set_index("time")["value"].sort_index().resample("1min").mean()
    missing = minute.isna()
    run_length = missing.groupby((missing != missing.shift()).cumsum()).transform("size")
    minute = minute.interpolate(limit_area="inside").where(~missing | (run_length <= 5)).dropna()
    return pd.DataFrame({"time": minute.index, "device_id": "room-occupancy-s5", "iaq": minute.to_numpy()})


LIMITS = (800.0, 1000.0)


def replay(quick: bool, state_dir: Path) -> dict:
    """Leave one day out: for each day on which the CO2 crosses a limit, the models (ml.training,
    as they are) are trained on the other days, then that day is replayed minute by minute: the
    reading into stage, one forecast cycle (ml.forecasting), one alert pass. The CO2 series is fed
    in as the device's IAQ channel, because the forecast models forecast IAQ only; the limits are
    in ppm. Rules per limit L: `threshold-L` (above L for 10m, the shipped threshold shape),
    `crossing-L` (above L, no `for`: when the limit is crossed) and `forecast-L` (predicted above L
    within 15m)."""
    import mlflow

    from alerts.evaluate import evaluate
    from alerts.rules import parse_rules
    from iot_core.connections import pg_connect, pg_url
    from iot_core.settings import get_settings
    from ml import registry
    from ml.forecasting import run_forecast
    from ml.training import train_candidates

    src = SHARED_DATA / "room_occupancy_estimation"
    if not src.is_dir():
        return {"skipped": f"dataset not found at {src}"}
    df = room_occupancy_minutes()
    df["day"] = df["time"].dt.floor("D")
    crossing_days = sorted(df.loc[df["iaq"] > min(LIMITS), "day"].unique())
    if quick:
        crossing_days = crossing_days[:1]
    device = "room-occupancy-s5"
    rules = parse_rules("rules:\n" + "".join(
        f"  - {{id: threshold-{L:.0f}, kind: threshold, measure: iaq, above: {L}, for: 10m, hysteresis: 50}}\n"
        f"  - {{id: crossing-{L:.0f}, kind: threshold, measure: iaq, above: {L}}}\n"
        f"  - {{id: forecast-{L:.0f}, kind: forecast, measure: iaq, above: {L}, within: 15m, hysteresis: 50}}\n"
        for L in LIMITS), "replay-rules")
    settings, cluster, _ = start_throwaway_servers(state_dir)
    folds, events, series = [], [], {}
    try:
        os.environ["MLFLOW_TRACKING_URI"] = pg_url("mlflow", settings.mlflow_db, driver="postgresql+psycopg2")
        get_settings.cache_clear()
        settings = get_settings()
        registry.configure(settings)
        artifacts = state_dir / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(registry.EXPERIMENT, artifact_location=artifacts.as_uri())
        build_stage(settings, [(device, "uci", "0", "room")])
        params = {"lightgbm": {"n_estimators": 50 if quick else 300}, "mlp": {"max_iter": 50 if quick else 300}}
        for day in crossing_days:
            train = df[df["day"] != day]
            test = df[df["day"] == day]
            if quick:
                test = test.iloc[:400]
            with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
                cur.execute("truncate stage.iaq_minutely, stage.stg_sensor_readings, ml.predictions,"
                            " ml.model_selections, ml.forecast_runs")
                cur.execute("truncate ops.alert_events, ops.alert_notifications, ops.alert_state, ops.alert_progress,"
                            " ops.alert_runs, ops.alert_baselines" if _exists_table(cur, "ops.alert_events") else "select 1")
                # observed minutes (training reads only those: ml.dataset leaves interpolated ones out)
                with cur.copy("copy stage.iaq_minutely (time, device_id, iaq, is_interpolated) from stdin") as copy:
                    for t, v in zip(train["time"], train["iaq"], strict=True):
                        copy.write_row((t.to_pydatetime(), device, float(v), False))
                conn.commit()
            with timer() as t_train:
                trained = train_candidates(end=train["time"].max().to_pydatetime() + timedelta(minutes=1), days=60,
                                           stride=1, params=params)
            print(f"replay {day:%Y-%m-%d}: trained {[r.candidate for r in trained]} on {len(train)} minutes of the "
                  f"other days in {t_train():.0f} s; replaying {len(test)} minutes", flush=True)
            with pg_connect("transformer", settings=settings) as conn:
                conn.execute("truncate stage.iaq_minutely")
                conn.commit()
            with timer() as t_replay, pg_connect("transformer", settings=settings) as conn:
                for k, (t, v) in enumerate(zip(test["time"], test["iaq"], strict=True)):
                    t = t.to_pydatetime()
                    series[t] = float(v)
                    conn.execute("insert into stage.iaq_minutely (time, device_id, iaq, is_interpolated)"
                                 " values (%s, %s, %s, false)", (t, device, float(v)))
                    conn.execute("insert into stage.stg_sensor_readings (time, device_id, measure_name, value,"
                                 " _ingested_at) values (%s, %s, 'iaq', %s, %s)",
                                 (t, device, float(v), t + timedelta(seconds=20)))
                    conn.commit()
                    run_forecast(t, staleness_minutes=10, settings=settings)
                    evaluate(as_of=t + timedelta(seconds=30), settings=settings, ruleset=rules)
                    if k % 250 == 0:
                        print(f"replay {day:%Y-%m-%d}: {k}/{len(test)} minutes ({t:%H:%M}), load {load_average()}",
                              flush=True)
                rows = conn.execute("select rule_id, started_at, fired_at, resolved_at from ops.alert_events"
                                    " where fired_at is not null order by fired_at").fetchall()
                models = dict(conn.execute("select arm, count(*) from ml.model_selections group by arm").fetchall())
            events += rows
            folds.append({"day": f"{day:%Y-%m-%d}", "train_minutes": len(train), "replayed_minutes": len(test),
                          "train_seconds": round(t_train(), 1), "replay_seconds": round(t_replay(), 1),
                          "models_used": models})
        return {"folds": folds, "by_limit": {f"{L:.0f}": early_warning(events, series, L) for L in LIMITS}}
    finally:
        cluster.stop(mode="fast")


def _exists_table(cur, name: str) -> bool:
    return cur.execute("select to_regclass(%s)", (name,)).fetchone()[0] is not None


def early_warning(events, series: dict, limit: float) -> dict:
    """Match the forecast alerts of one limit to its crossings; lead times against the threshold
    rule (``for: 10m``) and the crossing itself. A crossing counts as warned when a forecast alert
    fired in the hour before it (``within_horizon``: at most 15 minutes before it); a forecast
    alert is false when no reading passes the limit in the 15 minutes after it, so a warning more
    than 15 minutes ahead is both."""
    L = f"{limit:.0f}"
    crossings = [e for e in events if e[0] == f"crossing-{L}"]
    thresholds = [e[2] for e in events if e[0] == f"threshold-{L}"]
    forecasts = [e[2] for e in events if e[0] == f"forecast-{L}"]
    episodes = []
    for _, _, c, _ in crossings:
        # the first forecast alert that fired in the hour before the crossing, after the previous crossing ended
        previous = max((e[3] for e in crossings if e[3] and e[3] <= c), default=c - timedelta(hours=1))
        warned = [f for f in forecasts if max(previous, c - timedelta(hours=1)) < f <= c]
        threshold = next((t for t in thresholds if c <= t <= c + timedelta(minutes=60)), None)
        first = min(warned) if warned else None
        episodes.append({
            "crossing_at": c.isoformat(), "forecast_warned_at": first.isoformat() if first else None,
            "threshold_fired_at": threshold.isoformat() if threshold else None,
            "minutes_before_crossing": round((c - first).total_seconds() / 60, 1) if first else None,
            "minutes_before_threshold_rule": (round((threshold - first).total_seconds() / 60, 1)
                                              if first and threshold else None),
            "threshold_minutes_after_crossing": round((threshold - c).total_seconds() / 60, 1) if threshold else None,
            # warned, and no earlier than the forecast rule's horizon (15 minutes) before the crossing
            "within_horizon": bool(first and c - first <= timedelta(minutes=15))})
    false = [f.isoformat() for f in forecasts
             if not any(v > limit for t, v in series.items() if f <= t <= f + timedelta(minutes=15))]
    leads = [e["minutes_before_threshold_rule"] for e in episodes if e["minutes_before_threshold_rule"] is not None]
    before = [e["minutes_before_crossing"] for e in episodes if e["minutes_before_crossing"] is not None]

    def stats(xs):
        return {"median": statistics.median(xs) if xs else None, "min": min(xs, default=None),
                "max": max(xs, default=None)}

    return {"limit_ppm": limit, "crossings": len(crossings), "threshold_alerts": len(thresholds),
            "forecast_alerts": len(forecasts), "crossings_warned_before_by_forecast": len(before),
            "crossings_warned_within_horizon": sum(e["within_horizon"] for e in episodes),
            "minutes_earlier_than_threshold_rule": stats(leads), "minutes_before_crossing": stats(before),
            "false_forecast_alerts": len(false), "false_forecast_alert_times": false, "episodes": episodes}


def plot_replay(result: dict, path: Path) -> None:
    """Minutes of warning per crossing: the forecast rule before the crossing and before the
    threshold rule, one panel per limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limits = [r for r in (result.get("by_limit") or {}).values() if r.get("episodes")]
    if not limits:
        return
    fig, axes = plt.subplots(len(limits), 1, figsize=(9, 3.2 * len(limits)), squeeze=False)
    for ax, r in zip(axes[:, 0], limits, strict=True):
        episodes = r["episodes"]
        xs = range(len(episodes))
        ax.bar([x - 0.2 for x in xs], [e["minutes_before_crossing"] or 0 for e in episodes], 0.4,
               label="forecast rule: minutes before the crossing")
        ax.bar([x + 0.2 for x in xs], [e["minutes_before_threshold_rule"] or 0 for e in episodes], 0.4,
               label="forecast rule: minutes before the threshold rule (for 10m)")
        ax.set_xticks(list(xs), [e["crossing_at"][5:16].replace("T", " ") for e in episodes], fontsize=8)
        ax.set_ylabel("minutes of warning")
        ax.set_title(f"CO2 above {r['limit_ppm']:.0f} ppm: {r['crossings']} crossings, "
                     f"{r['crossings_warned_before_by_forecast']} warned before; {r['forecast_alerts']} forecast "
                     f"alerts, {r['false_forecast_alerts']} false", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- (a) latency against the stack
def latency(minutes: float, probes: int) -> dict:
    """Probe devices write one reading a minute whose CO2 alternates between 2,000 and 400 ppm; a
    rule `probe-co2` (threshold above 1,500, no `for`) must fire on each high reading and resolve on
    each low one. Seconds from the write to the alert event (fired_at / resolved_at set on the row
    of ops.alert_events, seen by polling every second)."""
    from benchmarks.forecast.freshness import stack_context
    from iot_core.connections import mongo_client, mongo_db, pg_connect
    from iot_core.settings import get_settings

    rules_file = get_settings().alert_rules_file
    if not rules_file.endswith("latency_rules.yml"):
        print(f"warning: ALERT_RULES_FILE is {rules_file!r}: the stack's iot_alerts needs the rule 'probe-co2' of "
              "benchmarks/alerts/latency_rules.yml (set it in the stack's env file before `iot stack up`)", flush=True)
    context_before = stack_context()
    paused = [d for d in ("iot_raw_extract", "iot_stage_transform", "iot_alerts")
              if context_before["dags"].get(d, {}).get("paused", True)]
    if paused:
        print(f"warning: hot-path DAGs paused or missing: {paused}", flush=True)
    devices = [f"alert-probe-{i:02d}" for i in range(probes)]
    client = mongo_client()
    db = mongo_db(client)
    now = datetime.now(UTC)
    for d in devices:
        db.devices.update_one({"_id": d}, {"$set": {
            "device_id": d, "kind": "air_quality", "owner_user_id": None, "active": True,
            "location": {"lat": 0.0, "long": 0.0, "description": "alert probe", "building": "bench",
                         "floor": 0, "room": d},
            "manufacturer": {"name": "bench", "website": "https://example.invalid"}, "model": "probe",
            "mac": "00:00:00:00:00:00", "installed_at": now - timedelta(days=1), "history": [],
            "_ingested_at": now}}, upsert=True)
    written: dict[tuple[str, datetime], tuple[float, str]] = {}
    seen: dict[tuple[str, datetime], float] = {}
    deadline = time.time() + minutes * 60
    next_write = time.time() + 20      # the registry update reaches stage first
    k = 0
    with pg_connect("transformer", autocommit=True) as conn:
        while time.time() < deadline or (written.keys() - seen.keys() and time.time() < deadline + 180):
            if time.time() >= next_write and time.time() < deadline:
                ts = datetime.now(UTC).replace(microsecond=0)
                co2 = 2000.0 if k % 2 == 0 else 400.0
                for d in devices:
                    db.air_quality.insert_one({"_id": f"aq:{d}:{int(ts.timestamp())}", "devid": d, "ts": ts.isoformat(),
                                               "readings": [60.0, 21.5, 45.0, 101.3, 0.5, co2, 3.0],
                                               "_ingested_at": datetime.now(UTC)})
                    written[(d, ts)] = (time.time(), "fired" if co2 > 1500 else "resolved")
                k += 1
                next_write += 60
            polled = time.time()
            pending = written.keys() - seen.keys()
            if pending:
                rows = conn.execute("select device_id, fired_at, resolved_at from ops.alert_events"
                                    " where rule_id = 'probe-co2' and device_id = any(%s)", (devices,)).fetchall()
                fired = {(d, f) for d, f, _ in rows if f}
                resolved = {(d, r) for d, _, r in rows if r}
                for key in pending:
                    want = written[key][1]
                    if key in (fired if want == "fired" else resolved):
                        seen[key] = polled
            time.sleep(1)
    client.close()
    delays = [seen[key] - written[key][0] for key in seen]

    def pct(q):
        return round(float(np.percentile(delays, q)), 2) if delays else None

    return {"probes": probes, "minutes": minutes, "readings": len(written), "reached_alert": len(delays),
            "never_reached": len(written) - len(delays), "poll_interval_s": 1,
            "to_alert_event_s": {"p50": pct(50), "p95": pct(95), "max": round(max(delays), 2) if delays else None},
            "goal_p95_s": 60, "stretch_p95_s": 30,
            "goal_met": bool(delays) and len(delays) == len(written) and pct(95) <= 60,
            "stretch_met": bool(delays) and len(delays) == len(written) and pct(95) <= 30,
            "context_before": context_before, "load_average_after": load_average()}


def main(argv: list[str]) -> int:
    """Each part writes its own result (benchmarks/results/alerts_<part>.json), so they can run apart."""
    args = parse_args(argv)
    if args.latency:
        result = {"quick": args.quick, "load_average_before": load_average()}
        result["latency"] = latency(args.minutes, args.probes)
        write_result(f"{NAME}_latency", result)
        return 0
    if not args.skip_scale:
        result = {"quick": args.quick, "load_average_before": load_average()}
        with tempfile.TemporaryDirectory(prefix="iot-bench-alerts-") as d:
            os.chmod(d, 0o755)
            result["scale"] = scale(args.devices, args.passes, Path(d))
        result["load_average_after"] = load_average()
        write_result(f"{NAME}_scale", result)
    if not args.skip_replay:
        result = {"quick": args.quick, "load_average_before": load_average()}
        with tempfile.TemporaryDirectory(prefix="iot-bench-alerts-replay-") as d:
            os.chmod(d, 0o755)
            result["early_warning"] = replay(args.quick, Path(d))
        result["load_average_after"] = load_average()
        write_result(f"{NAME}_early_warning", result)
        if not args.quick:
            plot_replay(result["early_warning"], IMG_DIR / "alerts_early_warning.png")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
