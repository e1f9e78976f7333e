"""One forecast cycle (run every minute by ``iot_forecast``).

1. Settle: every arm's pending forecast of a device (``ml.arm_forecasts``) is scored once *that
   device's* actuals exist (its newest reading is at least 15 minutes after the forecast's issue
   minute): the absolute error at each target minute that had a reading, summed per round and arm
   into ``ml.arm_scores`` together with the reward (ml.bandit.reward_from_errors against the
   persistence arm on the same points). A device that lags behind the others settles later, into
   its own round. Forecasts still unscored after a day (the device went silent) are dropped and
   counted.
2. Windows: the input of every device is the 60 minutes ending at its newest reading ``t0`` (at
   most ``staleness_minutes`` before the issue minute), built from its readings by ml.series
   (readings at most FORECAST_MAX_GAP_MINUTES apart are interpolated, so a sensor reporting every
   5-15 minutes gets windows; no minute after ``t0`` is used). Devices are skipped, with the
   reason logged and stored in ``ml.forecast_runs``, when their data is stale, has a longer gap in
   the last 60 minutes, or their newest reading was already forecast by an earlier cycle (so each
   reading is forecast once and re-runs change nothing).
3. Choose: sliding-window UCB (ml.bandit) over the current candidates
   (``ml.model_candidates.is_current``), statistics from the scored forecasts of the last
   FORECAST_SELECTION_WINDOW_ROUNDS rounds; one choice per issue minute, stored in
   ``ml.model_selections`` (a re-run reuses it). The chosen version holds the MLflow alias
   ``champion``.
4. Predict with every arm (each is scored later); the chosen arm's forecasts are written to
   ``ml.predictions`` for ``t0 + h`` as ``iaq~h`` with ``issued_at = t0``, every arm's to
   ``ml.arm_forecasts``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings
from ml import bandit, registry
from ml.dataset import load_observations
from ml.models import HORIZON_MINUTES, INPUT_MINUTES
from ml.schema import ensure_schema
from ml.series import from_observations, latest_window, minute_to_timestamp

log = logging.getLogger(__name__)

DEFAULT_STALENESS_MINUTES = 10
UNSCORED_EXPIRY = timedelta(days=1)
_champion_set: dict[str, str] = {}   # registered model -> version this process last aliased


class NoTrainedModels(RuntimeError):
    pass


def issue_minute_of(ts: datetime | None) -> datetime:
    ts = ts or datetime.now(UTC)
    if ts.tzinfo is None:
        raise ValueError("issue time must be timezone-aware")
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


# ---------------------------------------------------------------- 1. settle
_DUE_SQL = """
with devices as (
    select device_id, min(issued_at) as first_issued from ml.arm_forecasts group by device_id
), latest as (
    select d.device_id, l.time as latest
    from devices d
    cross join lateral (
        select s.time from stage.iaq_minutely s
        where s.device_id = d.device_id and s.time >= d.first_issued and not s.is_interpolated
          and s.iaq is not null
        order by s.time desc limit 1
    ) l
), due as (
    select f.* from ml.arm_forecasts f join latest l using (device_id)
    where l.latest >= f.issued_at + interval '15 minutes'
)
select due.issue_minute, due.device_id, due.arm, due.model_version,
       coalesce(sum(abs(e.v - a.iaq)), 0), count(a.iaq)
from due
cross join lateral unnest(due.forecast) with ordinality as e(v, h)
left join stage.iaq_minutely a
       on a.device_id = due.device_id and a.time = due.issued_at + e.h * interval '1 minute'
      and not a.is_interpolated
group by 1, 2, 3, 4
"""


def settle_rewards(cur, issue_minute: datetime | None = None) -> tuple[int, int]:
    """Score every pending device forecast whose actuals exist; returns (device forecasts
    settled, device forecasts dropped unscored). Idempotent: a scored forecast leaves
    ml.arm_forecasts in the same transaction as its score is added."""
    cur.execute(_DUE_SQL)
    rows = cur.fetchall()
    by_forecast: dict[tuple, dict[str, tuple[str, float, int]]] = defaultdict(dict)
    for minute, device, arm, version, abs_error, points in rows:
        by_forecast[(minute, device)][arm] = (version, float(abs_error), int(points))
    add: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0, 0, 0.0])   # (minute, arm, version) -> sums
    settled = 0
    for (minute, _device), arms in by_forecast.items():
        base = arms.get("persistence")
        if base is None or base[2] == 0:        # no actual at any horizon (a gap): nothing to score
            continue
        settled += 1
        for arm, (version, abs_error, points) in arms.items():
            if points != base[2]:               # scored on other points than persistence: not comparable
                continue
            s = add[(minute, arm, version)]
            s[0] += 1
            s[1] += bandit.reward_from_errors(abs_error / points, base[1] / points)
            s[2] += abs_error
            s[3] += points
            s[4] += (base[1] - abs_error) ** 2
    if add:
        cur.executemany(
            "insert into ml.arm_scores (issue_minute, arm, model_version, devices, reward_sum, abs_error_sum, points,"
            " diff_sq_sum) values (%s, %s, %s, %s, %s, %s, %s, %s)"
            " on conflict (issue_minute, arm, model_version) do update set"
            " devices = ml.arm_scores.devices + excluded.devices,"
            " reward_sum = ml.arm_scores.reward_sum + excluded.reward_sum,"
            " abs_error_sum = ml.arm_scores.abs_error_sum + excluded.abs_error_sum,"
            " points = ml.arm_scores.points + excluded.points,"
            " diff_sq_sum = ml.arm_scores.diff_sq_sum + excluded.diff_sq_sum",
            [(m, a, v, *sums) for (m, a, v), sums in add.items()])
        rounds = sorted({m for m, _, _ in add})
        cur.execute(
            "update ml.model_selections s set reward = c.reward_sum / c.devices,"
            " model_mae = c.abs_error_sum / nullif(c.points, 0), persistence_mae = p.abs_error_sum / nullif(p.points, 0),"
            " n_points = c.points, settled_at = now(), note = null"
            " from ml.arm_scores c, ml.arm_scores p"
            " where s.issue_minute = any(%s) and c.issue_minute = s.issue_minute and c.arm = s.arm"
            " and c.model_version = s.model_version and p.issue_minute = s.issue_minute and p.arm = 'persistence'",
            (rounds,))
    if by_forecast:
        keys = list(by_forecast)
        cur.execute("delete from ml.arm_forecasts where (issue_minute, device_id) in"
                    " (select * from unnest(%s::timestamptz[], %s::text[]))",
                    ([k[0] for k in keys], [k[1] for k in keys]))
    expired = 0
    if issue_minute is not None:
        cur.execute("delete from ml.arm_forecasts where issue_minute < %s returning device_id, issue_minute",
                    (issue_minute - UNSCORED_EXPIRY,))
        expired = len({tuple(r) for r in cur.fetchall()})
    unscored = len(by_forecast) - settled
    if unscored:
        log.info("%d device forecasts had no reading at any of their 15 minutes: not scored", unscored)
    return settled, expired + unscored


# ---------------------------------------------------------------- 3. choice
def current_arms(cur) -> list[tuple[str, str]]:
    """(candidate, version) of the current candidates, best validation error first (the order
    the selection falls back on while no reward is settled)."""
    cur.execute("select candidate, model_version from ml.model_candidates"
                " where is_current and registered_model = %s order by mae_ratio nulls last, candidate",
                (registry.REGISTERED_MODEL,))
    return [(c, v) for c, v in cur.fetchall()]


def arm_statistics(cur, issue_minute: datetime, candidates: list[str], window_rounds: int) -> list[bandit.ArmStats]:
    """Settled errors of each candidate (over its versions) and of persistence on the same device
    forecasts, over the rounds of the window: the ``window_rounds`` most recent, this one included."""
    if window_rounds < 2:
        return [bandit.ArmStats(c) for c in candidates]
    cur.execute(
        "select a.arm, sum(a.devices), sum(a.abs_error_sum), sum(p.abs_error_sum), sum(a.diff_sq_sum)"
        " from ml.arm_scores a join ml.arm_scores p on p.issue_minute = a.issue_minute and p.arm = 'persistence'"
        " where a.issue_minute < %(m)s and a.issue_minute >= coalesce((select issue_minute from ml.model_selections"
        "   where issue_minute < %(m)s order by issue_minute desc offset %(skip)s limit 1), '-infinity')"
        " and a.arm = any(%(arms)s) and a.points = p.points"
        " group by 1",
        {"m": issue_minute, "skip": window_rounds - 2, "arms": candidates})
    got = {a: (float(n), float(e), float(pe), float(sq)) for a, n, e, pe, sq in cur.fetchall()}
    return [bandit.ArmStats(c, *got.get(c, (0.0, 0.0, 0.0, 0.0))) for c in candidates]


def window_overlap(cur, issue_minute: datetime, window_rounds: int) -> float:
    """bandit.overlap_rounds of the window ending at ``issue_minute``: its rounds (the earlier
    choices in it, and this one) over the minutes they span."""
    cur.execute("select count(*), min(issue_minute) from (select issue_minute from ml.model_selections"
                " where issue_minute < %s order by issue_minute desc limit %s) w",
                (issue_minute, max(window_rounds - 1, 0)))
    earlier, first = cur.fetchone()
    if not earlier:
        return 1.0
    return bandit.overlap_rounds(earlier + 1, (issue_minute - first).total_seconds() / 60 + 1)


def choose_arm(cur, issue_minute: datetime, window_rounds: int) -> tuple[str, str, bool]:
    """(candidate, version, newly_chosen) for this issue minute (reuses a stored choice)."""
    cur.execute("select arm, model_version from ml.model_selections where issue_minute = %s", (issue_minute,))
    row = cur.fetchone()
    if row:
        return row[0], row[1], False
    arms = current_arms(cur)
    if not arms:
        raise NoTrainedModels("no trained forecast models: run the iot_train_models DAG or `iot train` first")
    stats = arm_statistics(cur, issue_minute, [a for a, _ in arms], window_rounds)
    index, scores = bandit.choose(stats, overlap=window_overlap(cur, issue_minute, window_rounds))
    arm, version = arms[index]
    cur.execute("insert into ml.model_selections (issue_minute, arm, model_version, ucb_scores)"
                " values (%s, %s, %s, %s) on conflict (issue_minute) do nothing",
                (issue_minute, arm, version,
                 json.dumps({s.name: (None if x is None else round(x, 6)) for s, x in zip(stats, scores, strict=True)})))
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


# ---------------------------------------------------------------- 2. inputs
def recent_windows(cur, issue_minute: datetime, staleness_minutes: int, max_gap_minutes: int
                   ) -> tuple[list[str], np.ndarray, list[datetime], dict[str, str]]:
    """(device ids, windows (n, 60), t0 per device, skipped device -> reason) for every device with
    a reading in the span that can reach an input: 60 minutes, the gap before it, the staleness."""
    span = INPUT_MINUTES + max_gap_minutes + staleness_minutes
    start = issue_minute - timedelta(minutes=span - 1)
    observations = load_observations(cur.connection, since=start, until=issue_minute + timedelta(minutes=1))
    devices, xs, t0s, skipped = [], [], [], {}
    issue_epoch = int(issue_minute.timestamp() // 60)
    for device, (minutes, values) in sorted(observations.items()):
        age = issue_epoch - int(minutes[-1])
        if age > staleness_minutes:
            skipped[device] = f"stale: latest reading {age} minutes before the issue minute"
            continue
        x, t0, reason = latest_window(from_observations(device, minutes, values, max_gap_minutes))
        if reason:
            skipped[device] = reason
            continue
        devices.append(device)
        xs.append(x)
        t0s.append(minute_to_timestamp([t0])[0].to_pydatetime())
    return devices, (np.vstack(xs) if xs else np.empty((0, INPUT_MINUTES))), t0s, skipped


# ---------------------------------------------------------------- 4. writes
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


def _write_arm_forecasts(cur, issue_minute, devices, t0s, forecasts: dict[tuple[str, str], np.ndarray]) -> None:
    cur.execute("create temp table if not exists _new_arm_forecasts (like ml.arm_forecasts) on commit drop")
    with cur.copy("copy _new_arm_forecasts (issue_minute, device_id, arm, model_version, issued_at, forecast)"
                  " from stdin") as copy:
        copy.set_types(["timestamptz", "text", "text", "text", "timestamptz", "float8[]"])
        for (arm, version), values in forecasts.items():
            for device, t0, row in zip(devices, t0s, values, strict=True):
                copy.write_row((issue_minute, device, arm, version, t0, [float(v) for v in row]))
    cur.execute("insert into ml.arm_forecasts select * from _new_arm_forecasts on conflict do nothing")


# ---------------------------------------------------------------- the cycle
def run_forecast(issue_time: datetime | None = None, staleness_minutes: int = DEFAULT_STALENESS_MINUTES,
                 settings: Settings | None = None) -> dict:
    """One cycle for ``issue_time`` (default now); returns the run summary also stored in ml.forecast_runs."""
    settings = settings or get_settings()
    issue_minute = issue_minute_of(issue_time)
    started_at = datetime.now(UTC)
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    arm = version = None
    rows = 0
    with pg_connect("transformer", settings=settings) as conn:
        ensure_schema(conn)
        with conn.cursor() as cur:
            settled, dropped = settle_rewards(cur, issue_minute)
            conn.commit()
            seconds["settle"] = time.perf_counter() - tick
            tick = time.perf_counter()
            devices, windows, t0s, skipped = recent_windows(cur, issue_minute, staleness_minutes,
                                                            settings.forecast_max_gap_minutes)
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
            if devices:
                tick = time.perf_counter()
                arm, version, new = choose_arm(cur, issue_minute, settings.forecast_selection_window_rounds)
                conn.commit()
                seconds["choose"] = time.perf_counter() - tick
                log.info("issue minute %s: %s model %s version %s (%d device forecasts settled)", issue_minute,
                         "chose" if new else "re-using choice", arm, version, settled)
                tick = time.perf_counter()
                hold_champion_alias(version, settings)
                models = {(a, v): registry.load_model(v, settings=settings) for a, v in current_arms(cur)}
                models.setdefault((arm, version), registry.load_model(version, settings=settings))
                seconds["load_models"] = time.perf_counter() - tick
                tick = time.perf_counter()
                forecasts = {key: np.asarray(m.predict(windows), dtype=np.float64) for key, m in models.items()}
                seconds["predict"] = time.perf_counter() - tick
                tick = time.perf_counter()
                rows = _write_predictions(cur, devices, t0s, forecasts[(arm, version)], arm, version)
                _write_arm_forecasts(cur, issue_minute, devices, t0s, forecasts)
                seconds["write"] = time.perf_counter() - tick
            summary = {
                "issue_minute": issue_minute, "model_name": arm, "model_version": version,
                "devices_predicted": len(devices), "devices_skipped": len(skipped),
                "skipped": {"reasons": dict(reasons), "devices": dict(sorted(skipped.items())[:200])},
                "rows_written": rows, "rewards_settled": settled, "rewards_expired": dropped,
                "seconds": {k: round(v, 4) for k, v in seconds.items()},
            }
            cur.execute(
                "insert into ml.forecast_runs (issue_minute, model_name, model_version, devices_predicted,"
                " devices_skipped, skipped, rows_written, rewards_settled, rewards_expired, seconds, started_at,"
                " finished_at) values (%(issue_minute)s, %(model_name)s, %(model_version)s, %(devices_predicted)s,"
                " %(devices_skipped)s, %(skipped_json)s, %(rows_written)s, %(rewards_settled)s,"
                " %(rewards_expired)s, %(seconds_json)s, %(started_at)s, now())"
                " on conflict (issue_minute) do update set"
                " model_name = coalesce(excluded.model_name, ml.forecast_runs.model_name),"
                " model_version = coalesce(excluded.model_version, ml.forecast_runs.model_version),"
                " devices_predicted = ml.forecast_runs.devices_predicted + excluded.devices_predicted,"
                " devices_skipped = excluded.devices_skipped, skipped = excluded.skipped,"
                " rows_written = ml.forecast_runs.rows_written + excluded.rows_written,"
                " rewards_settled = ml.forecast_runs.rewards_settled + excluded.rewards_settled,"
                " rewards_expired = coalesce(ml.forecast_runs.rewards_expired, 0) + excluded.rewards_expired,"
                " seconds = excluded.seconds, finished_at = now()",
                {**summary, "skipped_json": json.dumps(summary["skipped"]),
                 "seconds_json": json.dumps(summary["seconds"]), "started_at": started_at})
        conn.commit()
    log.info("forecast %s: %d devices predicted (%d rows), %d skipped %s", issue_minute, len(devices), rows,
             len(skipped), dict(reasons))
    return summary
