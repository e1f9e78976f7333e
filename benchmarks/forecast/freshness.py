"""Freshness of the hot path against a running stack (``--freshness``), optionally with every DAG on.

    .venv/bin/python -m benchmarks.forecast --freshness [--all-dags] [--minutes 30] [--probes 5]

Probe devices write one IAQ reading a minute to MongoDB (with the simulator streaming beside them);
for each reading: seconds until it is in ``raw.air_quality``, in ``stage.stg_sensor_readings``, and
until the first prediction issued from data that includes it (p50/p95/max). Goals: p95 at most 30 s
to stage and 90 s to a prediction.

``--all-dags`` (issue 16) first switches on every DAG of the stack (extract, stage, validation,
master, agg, curated, forecast, training, export, alerts when present), so each batch DAG runs
once at the start (its latest interval, or a trigger when it was on already), so batch dbt work, training and exports compete with the hot path for the executor the whole
time; during the run a second connection, as the read-only analyst, queries every table and view of
``stage``, ``agg``, ``curated`` and ``ml`` once a second and counts the errors (goal 0, e.g. a view
dropped by a rebuild); at the end every failed task instance since the start is listed with its
error (goal 0). JSON in benchmarks/results/forecast_freshness[_all_dags][_celery].json, plot beside it.

Run it on a stack of your own (`make up` with an IOT_ENV_FILE giving other ports and LOCAL_DIR, see
docs/operations.md) after `make demo` (models in MLflow, a week of data).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from benchmarks.common import write_result

NAME = "forecast"
HOT_PATH_DAGS = ("iot_raw_extract", "iot_stage_transform", "iot_forecast")


def stack_context() -> dict:
    """What the measurement ran against: the DAGs' pause state and schedule, the machine's load."""
    from iot_cli.localstack.airflow import access_token, api_get
    from iot_core.settings import get_settings

    settings = get_settings()
    out: dict = {"load_average": [round(x, 2) for x in os.getloadavg()], "dags": {}}
    try:
        token = access_token(settings)
        for d in api_get(settings, "dags?limit=1000", token=token).get("dags", []):
            out["dags"][d["dag_id"]] = {"paused": d["is_paused"], "schedule": d.get("timetable_summary")}
    except Exception as e:  # noqa: BLE001 - the context is informative, the measurement is what counts
        out["dags_error"] = repr(e)[:300]
    return out


def freshness(minutes: float, probes: int, all_dags: bool = False) -> dict:
    """Probe devices write one IAQ reading a minute; for each reading, seconds until it is in
    raw.air_quality, in stage.stg_sensor_readings, and until the first prediction issued from data
    that includes it. A prediction's ``issued_at`` is the newest minute of its 60-minute input
    window, and a probe has one reading per minute, so ``issued_at >= minute(ts)`` means the
    reading was in the window."""
    from pymongo.errors import BulkWriteError

    from iot_core.connections import mongo_client, mongo_db, pg_connect

    started_at = datetime.now(UTC)
    switched = switch_on_every_dag() if all_dags else {}
    context_before = stack_context()
    paused = [d for d in HOT_PATH_DAGS if context_before["dags"].get(d, {}).get("paused", True)]
    if paused:
        print(f"warning: hot-path DAGs paused or missing: {paused}", flush=True)
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    devices = [f"fresh-probe-{i:02d}" for i in range(probes)]
    client = mongo_client()
    db = mongo_db(client)
    now = datetime.now(UTC)
    for d in devices:
        db.devices.update_one({"_id": d}, {"$set": {
            "device_id": d, "kind": "air_quality", "owner_user_id": None, "active": True,
            "location": {"lat": 0.0, "long": 0.0, "description": "freshness probe", "building": "bench",
                         "floor": 0, "room": d},
            "manufacturer": {"name": "bench", "website": "https://example.invalid"}, "model": "probe",
            "mac": "00:00:00:00:00:00", "installed_at": now - timedelta(days=1), "history": [],
            "_ingested_at": now}}, upsert=True)

    def reading(d: str, ts: datetime) -> dict:
        iaq = 100 + 20 * np.sin(ts.timestamp() / 600)
        return {"_id": f"aq:{d}:{int(ts.timestamp())}", "devid": d, "ts": ts.isoformat(),
                "readings": [float(iaq), 21.5, 45.0, 101.3, 0.5, 600.0, 3.0], "_ingested_at": datetime.now(UTC)}

    # 70 minutes of history so the forecast has full 60-minute windows
    history = [reading(d, start - timedelta(minutes=m)) for d in devices for m in range(70, 0, -1)]
    try:
        db.air_quality.insert_many(history, ordered=False)
    except BulkWriteError as e:  # minutes an earlier run already wrote are there: fine, others not
        if any(err["code"] != 11000 for err in e.details["writeErrors"]):
            raise
    written: dict[tuple[str, datetime], float] = {}
    arrived: dict[str, dict[tuple[str, datetime], float]] = {"raw": {}, "stage": {}, "prediction": {}}
    deadline = time.time() + minutes * 60
    next_write = time.time()
    grace = 180  # after the last write, wait this long for the stragglers
    analyst = AnalystPoller() if all_dags else None
    if analyst:
        analyst.start()
    with pg_connect("transformer", autocommit=True) as conn:
        while time.time() < deadline or (written.keys() - arrived["prediction"].keys() and time.time() < deadline + grace):
            if time.time() >= next_write and time.time() < deadline:
                ts = datetime.now(UTC).replace(microsecond=0)
                for d in devices:
                    db.air_quality.insert_one(reading(d, ts))
                    written[(d, ts)] = time.time()
                next_write += 60
                # progress, once a minute
                print(f"{datetime.now(UTC):%H:%M:%S} {len(written)} readings written; in stage "
                      f"{len(arrived['stage'])}, in a prediction {len(arrived['prediction'])}", flush=True)
            polled = time.time()
            if written.keys() - arrived["raw"].keys():
                ids = [f"aq:{d}:{int(ts.timestamp())}" for d, ts in written]
                got = {r[0] for r in conn.execute("select _id from raw.air_quality where _id = any(%s)", (ids,))}
                for d, ts in written.keys() - arrived["raw"].keys():
                    if f"aq:{d}:{int(ts.timestamp())}" in got:
                        arrived["raw"][(d, ts)] = polled
            if written.keys() - arrived["stage"].keys():
                rows = conn.execute("select device_id, time from stage.stg_sensor_readings where measure_name = 'iaq'"
                                    " and device_id = any(%s) and time >= %s", (devices, start)).fetchall()
                for key in rows:
                    if key in written and key not in arrived["stage"]:
                        arrived["stage"][key] = polled
            if written.keys() - arrived["prediction"].keys():
                issued = dict(conn.execute("select device_id, max(issued_at) from ml.predictions"
                                           " where device_id = any(%s) group by device_id", (devices,)).fetchall())
                for d, ts in written.keys() - arrived["prediction"].keys():
                    if issued.get(d) and issued[d] >= ts.replace(second=0):
                        arrived["prediction"][(d, ts)] = polled
            time.sleep(1)
    client.close()
    if analyst:
        analyst.stop()

    def pct(xs, q):
        return round(float(np.percentile(xs, q)), 2) if xs else None

    out: dict = {"probes": probes, "minutes": minutes, "readings": len(written), "poll_interval_s": 1}
    for layer, seen in arrived.items():
        delays = [seen[k] - written[k] for k in seen]
        out[f"to_{layer}_s"] = {"n": len(delays), "p50": pct(delays, 50), "p95": pct(delays, 95),
                                "max": round(max(delays), 2) if delays else None}
        out[f"never_reached_{layer}"] = len(written) - len(seen)
    out["goal"] = {"stage_p95_s": 30, "prediction_p95_s": 90}
    out["goal_met"] = {
        "stage": out["never_reached_stage"] == 0 and (out["to_stage_s"]["p95"] or 1e9) < 30,
        "prediction": out["never_reached_prediction"] == 0 and (out["to_prediction_s"]["p95"] or 1e9) < 90}
    if all_dags:
        out["switched_on"] = switched
        out["analyst"] = analyst.summary()
        out["failed_tasks"] = failed_tasks_since(started_at)
        out["batch_runs"] = runs_since(started_at, exclude=HOT_PATH_DAGS)
        out["batch_longest_s"] = longest_runs(out["batch_runs"])
        out["goal"].update({"failed_tasks": 0, "analyst_errors": 0, **BATCH_GOALS_S})
        out["goal_met"].update({"failed_tasks": not out["failed_tasks"],
                                "analyst_errors": out["analyst"]["errors"] == 0})
        out["goal_met"].update({goal: (out["batch_longest_s"].get(dag_id) or 0) <= limit
                                for goal, limit in BATCH_GOALS_S.items()
                                for dag_id in [goal.removesuffix("_run_s")]})
    out["context_before"] = context_before
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out["delays"] = {layer: sorted([k[1].isoformat(), round(seen[k] - written[k], 2)] for k in seen)
                     for layer, seen in arrived.items()}
    return out


# ---------------------------------------------------------------- --all-dags
# batch DAGs that run once at the start (their own schedules rarely fire within 30 minutes): switched
# on from paused, the scheduler runs their latest interval; already on, they are triggered
TRIGGERED_AT_START = ("iot_master_dag", "iot_curated_transform", "iot_agg_transform_daily", "iot_agg_transform_weekly",
                      "iot_agg_transform_monthly", "iot_train_models", "iot_export_csv")
# never switched on by the benchmark: they delete data or need a lake of their own
LEFT_OFF = ("iot_retention", "trip_summary_daily")


def switch_on_every_dag() -> dict:
    """Switch on every DAG but LEFT_OFF (a paused batch DAG then runs its latest interval) and
    trigger those of TRIGGERED_AT_START that were on already; what was done, per DAG."""
    from iot_cli.localstack.airflow import access_token, api_get, api_request
    from iot_core.settings import get_settings

    settings = get_settings()
    token = access_token(settings)

    def patiently(call, *args, **kwargs):
        # one api-server worker on a loaded 2-core machine: a request can time out; ask again
        for attempt in range(5):
            try:
                return call(*args, **kwargs)
            except (TimeoutError, OSError):
                if attempt == 4:
                    raise
                time.sleep(5)

    done = {}
    for d in patiently(api_get, settings, "dags?limit=1000", token=token).get("dags", []):
        dag_id = d["dag_id"]
        if dag_id in LEFT_OFF:
            continue
        if d.get("is_paused"):
            # catchup=False: switching a DAG on makes the scheduler run its latest interval at once
            # (what a user switching it on gets); a trigger besides ran each batch DAG twice
            patiently(api_request, settings, "PATCH", f"dags/{dag_id}", {"is_paused": False}, token=token)
            done[dag_id] = "switched on (runs its latest interval)"
        elif dag_id in TRIGGERED_AT_START:
            patiently(api_request, settings, "POST", f"dags/{dag_id}/dagRuns", {"logical_date": None}, token=token)
            done[dag_id] = "on, triggered"
        else:
            done[dag_id] = "on"
    print(f"switched on: {done}", flush=True)
    return done


def analyst_relations(conn) -> list[str]:
    return [f'"{s}"."{n}"' for s, n in conn.execute(
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('stage', 'agg', 'curated', 'ml') order by 1, 2").fetchall()]


class AnalystPoller(threading.Thread):
    """As the read-only analyst (DBeaver, Grafana): every table and view once a second; errors counted."""

    def __init__(self, interval_s: float = 1.0):
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.queries = 0
        self.errors: list[tuple[str, str, str]] = []  # (time, relation, error)
        self.relations: list[str] = []

    def run(self) -> None:
        from iot_core.connections import pg_connect

        with pg_connect("analyst", autocommit=True) as conn:
            self.relations = analyst_relations(conn)
            while not self.stopping.is_set():
                t0 = time.monotonic()
                for rel in self.relations:
                    try:
                        conn.execute(f"select * from {rel} limit 1").fetchall()  # noqa: S608 - names from the catalog
                    except Exception as e:  # noqa: BLE001 - counted, the run goes on
                        self.errors.append((datetime.now(UTC).isoformat(timespec="seconds"), rel,
                                            str(e).splitlines()[0][:200]))
                    self.queries += 1
                self.stopping.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)

    def summary(self) -> dict:
        return {"relations": len(self.relations), "queries": self.queries, "errors": len(self.errors),
                "first_errors": self.errors[:20]}


def failed_tasks_since(started_at: datetime) -> list[dict]:
    """Every task instance that failed (or is up for retry after a failure) since ``started_at``,
    from the Airflow API, with the first line of its recorded exception (ops.task_failures)."""
    from iot_cli.localstack.airflow import api_get
    from iot_core.connections import pg_connect
    from iot_core.settings import get_settings

    settings = get_settings()
    failed = []
    for state in ("failed", "up_for_retry"):
        answer = api_get(settings, f"dags/~/dagRuns/~/taskInstances?state={state}&limit=1000"
                                   f"&start_date_gte={started_at.isoformat().replace('+00:00', 'Z')}")
        failed += [{"dag_id": t["dag_id"], "task_id": t["task_id"], "run_id": t["dag_run_id"],
                    "try_number": t.get("try_number"), "state": state} for t in answer.get("task_instances", [])]
    with pg_connect("transformer") as conn:
        reasons = conn.execute("select dag_id, task_id, run_id, try_number, exception from ops.task_failures"
                               " where failed_at >= %s order by failed_at", (started_at,)).fetchall()
    for f in failed:
        f["exceptions"] = [r[4][:300] for r in reasons if r[:3] == (f["dag_id"], f["task_id"], f["run_id"])]
    return failed


# issue 16: batch work sized to finish well within its schedule, beside the hot path
BATCH_GOALS_S = {"iot_curated_transform_run_s": 120, "iot_master_dag_run_s": 600}


def longest_runs(runs: list[dict]) -> dict[str, float]:
    """The longest run (seconds, running ones until now) of each DAG."""
    longest: dict[str, float] = {}
    for r in runs:
        if r["seconds"] is not None:
            longest[r["dag_id"]] = max(longest.get(r["dag_id"], 0.0), r["seconds"])
    return longest


def runs_since(started_at: datetime, exclude=()) -> list[dict]:
    """DAG runs started since ``started_at`` (state, seconds): how long batch work takes beside the
    hot path (goals: an incremental curated run <= 2 min, a master run <= 10 min)."""
    from iot_cli.localstack.airflow import api_get
    from iot_core.settings import get_settings

    answer = api_get(get_settings(), "dags/~/dagRuns?limit=1000"
                                     f"&start_date_gte={started_at.isoformat().replace('+00:00', 'Z')}")
    runs = []
    for r in answer.get("dag_runs", []):
        if r["dag_id"] in exclude:
            continue
        start, end = r.get("start_date"), r.get("end_date")
        seconds = None
        if start:  # a run still going counts until now: it has taken at least that long
            until = datetime.fromisoformat(end) if end else datetime.now(UTC)
            seconds = round((until - datetime.fromisoformat(start)).total_seconds(), 1)
        runs.append({"dag_id": r["dag_id"], "run_id": r["dag_run_id"], "state": r["state"], "seconds": seconds})
    return sorted(runs, key=lambda r: (r["dag_id"], r["run_id"]))


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    for layer, marker in (("raw", "."), ("stage", "o"), ("prediction", "x")):
        points = result["delays"].get(layer) or []
        if points:
            ax.scatter([datetime.fromisoformat(t) for t, _ in points], [d for _, d in points], marker=marker,
                       label=f"to {layer} (p95 {result[f'to_{layer}_s']['p95']} s)")
    ax.axhline(30, color="tab:orange", linestyle="--", linewidth=0.8, label="goal: stage 30 s")
    ax.axhline(90, color="tab:green", linestyle="--", linewidth=0.8, label="goal: prediction 90 s")
    ax.set_ylabel("seconds after the MongoDB write")
    ax.set_title(f"freshness, {'every DAG on' if result.get('switched_on') else 'hot path only'}; "
                 f"load {result['context_before']['load_average']}")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_freshness(args, result: dict) -> int:
    result["freshness"] = freshness(args.minutes, args.probes, all_dags=getattr(args, "all_dags", False))
    from iot_cli.localstack import celery_mode
    from iot_core.settings import get_settings

    result["executor"] = celery_mode.executor_name(get_settings())
    name = f"{NAME}_freshness" + ("_all_dags" if getattr(args, "all_dags", False) else "") \
        + ("_celery" if result["executor"] == "CeleryExecutor" else "")
    path = write_result(name, result)
    plot(result["freshness"], path.with_suffix(".png"))
    met = result["freshness"]["goal_met"]
    print(f"goals met: {met}; plot {path.with_suffix('.png')}", flush=True)
    return 0 if all(met.values()) else 1


