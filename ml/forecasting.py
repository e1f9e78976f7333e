"""One forecast cycle (run every minute by ``iot_forecast``).

1. Settle rewards: every earlier choice whose 15 minutes have passed gets its realised error
   (MAE of its predictions against ``stage.iaq_minutely``) and the persistence error on the same
   points, turned into a UCB1 reward (ml.bandit.reward_from_errors).
2. Choose: UCB1 over the current candidates (``ml.model_candidates.is_current``), one choice per
   issue minute, stored in ``ml.model_selections``; a re-run of the same minute reuses it. The
   chosen version holds the MLflow alias ``champion``.
3. Predict for every active device: its input is the 60 minutes ending at its latest reading
   ``t0`` (at most ``staleness_minutes`` before the issue minute); predictions are written for
   ``t0 + h`` as ``iaq~h`` with ``issued_at = t0``. Devices are skipped, with the reason logged and
   stored in ``ml.forecast_runs``, when their data is stale, has a gap in the last 60 minutes, or
   their latest reading was already forecast by an earlier cycle (so each reading is forecast once
   and re-runs change nothing).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings
from ml import bandit, registry
from ml.models import HORIZON_MINUTES, INPUT_MINUTES
from ml.schema import ensure_schema

log = logging.getLogger(__name__)

DEFAULT_STALENESS_MINUTES = 10
_champion_set: dict[str, str] = {}   # registered model -> version this process last aliased


class NoTrainedModels(RuntimeError):
    pass


def issue_minute_of(ts: datetime | None) -> datetime:
    ts = ts or datetime.now(UTC)
    if ts.tzinfo is None:
        raise ValueError("issue time must be timezone-aware")
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


# ---------------------------------------------------------------- rewards
_SETTLE_SQL = """
with ordered as (
    select issue_minute, arm, model_version, settled_at,
           lag(issue_minute) over (order by issue_minute) as prev_minute
    from ml.model_selections
), due as (
    select * from ordered
    where settled_at is null and issue_minute + interval '15 minutes' <= %(latest)s
)
select d.issue_minute,
       count(*) filter (where a.iaq is not null and b.iaq is not null),
       avg(abs(p.value - a.iaq)) filter (where a.iaq is not null and b.iaq is not null),
       avg(abs(b.iaq - a.iaq)) filter (where a.iaq is not null and b.iaq is not null)
from due d
left join ml.predictions p
       on p.model_name = d.arm and p.model_version = d.model_version
      and p.issued_at <= d.issue_minute
      and p.issued_at > greatest(coalesce(d.prev_minute, '-infinity'::timestamptz),
                                 d.issue_minute - %(staleness)s * interval '1 minute')
left join stage.iaq_minutely a on a.device_id = p.device_id and a.time = p.time
left join stage.iaq_minutely b on b.device_id = p.device_id and b.time = p.issued_at
group by d.issue_minute
"""


def settle_rewards(cur, staleness_minutes: int = DEFAULT_STALENESS_MINUTES) -> int:
    """Reward every due choice from its realised error; returns how many were settled."""
    cur.execute("select max(time) from stage.iaq_minutely")
    latest = cur.fetchone()[0]
    if latest is None:
        return 0
    cur.execute(_SETTLE_SQL, {"latest": latest, "staleness": staleness_minutes})
    due = cur.fetchall()
    for issue_minute, n_points, model_mae, persistence_mae in due:
        if n_points:
            reward = bandit.reward_from_errors(float(model_mae), float(persistence_mae))
            note = None
        else:
            reward, note = None, "no predictions with actuals to score"
        cur.execute("update ml.model_selections set reward = %s, model_mae = %s, persistence_mae = %s,"
                    " n_points = %s, settled_at = now(), note = %s where issue_minute = %s",
                    (reward, model_mae, persistence_mae, n_points, note, issue_minute))
    return len(due)


# ---------------------------------------------------------------- choice
def current_arms(cur) -> list[tuple[str, str]]:
    """(candidate, version) of the current candidates, best validation MAE first (so the first
    unplayed arm UCB1 tries is the one validation favours)."""
    cur.execute("select candidate, model_version from ml.model_candidates"
                " where is_current and registered_model = %s order by val_mae, candidate",
                (registry.REGISTERED_MODEL,))
    return [(c, v) for c, v in cur.fetchall()]


def choose_arm(cur, issue_minute: datetime) -> tuple[str, str, bool]:
    """(candidate, version, newly_chosen) for this issue minute (reuses a stored choice)."""
    cur.execute("select arm, model_version from ml.model_selections where issue_minute = %s", (issue_minute,))
    row = cur.fetchone()
    if row:
        return row[0], row[1], False
    arms = current_arms(cur)
    if not arms:
        raise NoTrainedModels("no trained forecast models: run the iot_train_models DAG or `iot train` first")
    cur.execute("select arm, model_version, count(*), count(reward), coalesce(sum(reward), 0)"
                " from ml.model_selections group by arm, model_version")
    history = {(a, v): (n, k, s) for a, v, n, k, s in cur.fetchall()}
    stats = [bandit.ArmStats(f"{a}:{v}", *history.get((a, v), (0, 0, 0.0))) for a, v in arms]
    index, scores = bandit.choose(stats)
    arm, version = arms[index]
    cur.execute("insert into ml.model_selections (issue_minute, arm, model_version, ucb_scores)"
                " values (%s, %s, %s, %s) on conflict (issue_minute) do nothing",
                (issue_minute, arm, version,
                 json.dumps({s.name: (None if np.isinf(x) else round(x, 6)) for s, x in zip(stats, scores, strict=True)})))
    cur.execute("select arm, model_version from ml.model_selections where issue_minute = %s", (issue_minute,))
    chosen = cur.fetchone()   # a concurrent run of the same minute may have won: use its choice
    return chosen[0], chosen[1], True


def hold_champion_alias(version: str, settings: Settings | None = None) -> None:
    """Point ``champion`` at the chosen version (only when it changed since this process set it)."""
    if _champion_set.get(registry.REGISTERED_MODEL) == version:
        return
    client = registry.configure(settings)
    try:
        current = client.get_model_version_by_alias(registry.REGISTERED_MODEL, registry.CHAMPION).version
    except Exception:  # noqa: BLE001 - MLflow raises a generic error when the alias does not exist yet
        current = None
    if str(current) != str(version):
        registry.set_alias(client, registry.CHAMPION, version)
        log.info("champion alias now on %s version %s", registry.REGISTERED_MODEL, version)
    _champion_set[registry.REGISTERED_MODEL] = str(version)


# ---------------------------------------------------------------- inputs
def recent_windows(cur, issue_minute: datetime, staleness_minutes: int) -> tuple[list[str], np.ndarray,
                                                                                   list[datetime], dict[str, str]]:
    """(device ids, windows (n, 60), t0 per device, skipped device -> reason) for every device with
    a reading in the last 60 + staleness minutes up to the issue minute."""
    span = INPUT_MINUTES + staleness_minutes
    start = issue_minute - timedelta(minutes=span - 1)
    cur.execute("select device_id, time, iaq from stage.iaq_minutely where time >= %s and time <= %s"
                " and iaq is not null", (start, issue_minute))
    rows = cur.fetchall()
    if not rows:
        return [], np.empty((0, INPUT_MINUTES)), [], {}
    df = pd.DataFrame(rows, columns=["device_id", "time", "iaq"])
    codes, devices = pd.factorize(df["device_id"], sort=True)
    minute_idx = ((pd.to_datetime(df["time"], utc=True) - pd.Timestamp(start)) // pd.Timedelta(minutes=1)).to_numpy()
    grid = np.full((len(devices), span), np.nan)
    grid[codes, minute_idx] = df["iaq"].to_numpy(dtype=np.float64)
    present = np.isfinite(grid)
    last_idx = span - 1 - np.argmax(present[:, ::-1], axis=1)
    skipped: dict[str, str] = {}
    keep = np.ones(len(devices), dtype=bool)
    col = last_idx[:, None] - np.arange(INPUT_MINUTES - 1, -1, -1)[None, :]
    ok_range = last_idx >= INPUT_MINUTES - 1
    windows = np.take_along_axis(grid, np.clip(col, 0, span - 1), axis=1)
    missing = (~np.isfinite(windows)).sum(axis=1)
    t0s = [start + timedelta(minutes=int(i)) for i in last_idx]
    for i, device in enumerate(devices):
        age = span - 1 - last_idx[i]
        if age > staleness_minutes:
            skipped[device] = f"stale: latest reading {age} minutes before the issue minute"
        elif not ok_range[i] or missing[i]:
            gaps = missing[i] if ok_range[i] else INPUT_MINUTES - int(present[i, : last_idx[i] + 1].sum())
            skipped[device] = f"not enough recent data: {gaps} of the last {INPUT_MINUTES} minutes missing"
        else:
            continue
        keep[i] = False
    kept = np.flatnonzero(keep)
    return [devices[i] for i in kept], windows[kept], [t0s[i] for i in kept], skipped


# ---------------------------------------------------------------- the cycle
def _write_predictions(cur, devices, t0s, values, model_name, model_version) -> int:
    cur.execute("create temp table if not exists _new_predictions (like ml.predictions) on commit drop")
    horizons = range(1, HORIZON_MINUTES + 1)
    with cur.copy("copy _new_predictions (time, device_id, measure_name, value, model_name, model_version,"
                  " issued_at) from stdin") as copy:
        for device, t0, row in zip(devices, t0s, values, strict=True):
            for h in horizons:
                copy.write_row((t0 + timedelta(minutes=h), device, f"iaq~{h}", float(row[h - 1]),
                                model_name, model_version, t0))
    cur.execute("insert into ml.predictions select * from _new_predictions"
                " on conflict (device_id, time, measure_name) do update set value = excluded.value,"
                " model_name = excluded.model_name, model_version = excluded.model_version,"
                " issued_at = excluded.issued_at")
    return cur.rowcount


def run_forecast(issue_time: datetime | None = None, staleness_minutes: int = DEFAULT_STALENESS_MINUTES,
                 settings: Settings | None = None) -> dict:
    """One cycle for ``issue_time`` (default now); returns the run summary also stored in ml.forecast_runs."""
    settings = settings or get_settings()
    issue_minute = issue_minute_of(issue_time)
    started_at = datetime.now(UTC)
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    with pg_connect("transformer", settings=settings) as conn:
        ensure_schema(conn)
        with conn.cursor() as cur:
            settled = settle_rewards(cur, staleness_minutes)
            arm, version, new = choose_arm(cur, issue_minute)
            conn.commit()
            seconds["select"] = time.perf_counter() - tick
            log.info("issue minute %s: %s model %s version %s (%d rewards settled)", issue_minute,
                     "chose" if new else "re-using choice", arm, version, settled)
            tick = time.perf_counter()
            devices, windows, t0s, skipped = recent_windows(cur, issue_minute, staleness_minutes)
            cur.execute("select device_id, max(issued_at) from ml.predictions where issued_at > %s"
                        " and issued_at <= %s group by device_id",
                        (issue_minute - timedelta(minutes=staleness_minutes + 1), issue_minute))
            done = dict(cur.fetchall())
            todo = []
            for i, (device, t0) in enumerate(zip(devices, t0s, strict=True)):
                if device in done and done[device] >= t0:
                    skipped[device] = f"already forecast: its reading at {t0:%Y-%m-%d %H:%M} by an earlier cycle"
                else:
                    todo.append(i)
            devices = [devices[i] for i in todo]
            t0s = [t0s[i] for i in todo]
            windows = windows[todo]
            seconds["read"] = time.perf_counter() - tick
            reasons = Counter(r.split(":", 1)[0] for r in skipped.values())   # "<category>: <detail>"
            for device, reason in sorted(skipped.items())[:20]:
                log.info("skipped device %s: %s", device, reason)
            if len(skipped) > 20:
                log.info("... %d devices skipped in all: %s", len(skipped), dict(reasons))
            rows = 0
            if devices:
                tick = time.perf_counter()
                hold_champion_alias(version, settings)
                model = registry.load_model(version, settings=settings)
                seconds["load_model"] = time.perf_counter() - tick
                tick = time.perf_counter()
                values = np.asarray(model.predict(windows), dtype=np.float64)
                seconds["predict"] = time.perf_counter() - tick
                tick = time.perf_counter()
                rows = _write_predictions(cur, devices, t0s, values, arm, version)
                seconds["write"] = time.perf_counter() - tick
            summary = {
                "issue_minute": issue_minute, "model_name": arm, "model_version": version,
                "devices_predicted": len(devices), "devices_skipped": len(skipped),
                "skipped": {"reasons": dict(reasons), "devices": dict(sorted(skipped.items())[:200])},
                "rows_written": rows, "rewards_settled": settled,
                "seconds": {k: round(v, 4) for k, v in seconds.items()},
            }
            cur.execute(
                "insert into ml.forecast_runs (issue_minute, model_name, model_version, devices_predicted,"
                " devices_skipped, skipped, rows_written, rewards_settled, seconds, started_at, finished_at)"
                " values (%(issue_minute)s, %(model_name)s, %(model_version)s, %(devices_predicted)s,"
                " %(devices_skipped)s, %(skipped_json)s, %(rows_written)s, %(rewards_settled)s, %(seconds_json)s,"
                " %(started_at)s, now()) on conflict (issue_minute) do update set"
                " devices_predicted = ml.forecast_runs.devices_predicted + excluded.devices_predicted,"
                " devices_skipped = excluded.devices_skipped, skipped = excluded.skipped,"
                " rows_written = ml.forecast_runs.rows_written + excluded.rows_written,"
                " rewards_settled = ml.forecast_runs.rewards_settled + excluded.rewards_settled,"
                " seconds = excluded.seconds, finished_at = now()",
                {**summary, "skipped_json": json.dumps(summary["skipped"]),
                 "seconds_json": json.dumps(summary["seconds"]), "started_at": started_at})
        conn.commit()
    log.info("forecast %s: %d devices predicted (%d rows), %d skipped %s", issue_minute, len(devices), rows,
             len(skipped), dict(reasons))
    return summary
