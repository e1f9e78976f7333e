"""Walk-forward (rolling-origin) backtest of the production forecasting on any series.

What production does, replayed over all the data (docs/forecasting.md, "Backtest"):

1. Training on the production schedule: at 00:00 local time (``timezone``, the TRAINING_TIMEZONE)
   every Monday, on the ``days`` before it, exactly as ``ml.training`` does (the same windows,
   walk-forward tuning over weekdays, candidates). The first training is at the first local
   midnight with enough windows, standing in for the first manual training after an install;
   a scheduled training without enough data keeps the previous models, as production does.
2. Every window issued after the first training (at an observed minute, inputs from earlier
   readings only: ml.series) is forecast by every candidate of the newest model set trained
   *before* it, and scored where its targets had readings.
3. The selection (ml.bandit) is replayed round by round (a round = an issue minute): its choice
   uses only forecasts settled by then, each device's once that device's actuals exist; the
   chosen arm's forecasts form the *system*.
4. Results per model and for the system: MAE per horizon, ratio to persistence on the same
   points, and a 95 % bootstrap interval of each ratio over local days (days resampled with
   replacement, all devices of a day together); the system's choices and realised regret against
   the best arm in hindsight and against persistence.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml import bandit
from ml.models import CANDIDATES
from ml.series import DEFAULT_MAX_GAP_MINUTES, HORIZON_MINUTES, Windows, from_observations, windows
from ml.tuning import DEFAULT_FOLDS, Tuned, fit_candidates, local_days, local_midnight_minute

log = logging.getLogger(__name__)

MIN_TRAIN_WINDOWS = 60


@dataclass
class BacktestConfig:
    days: float | None = None                   # training span; None: FORECAST_TRAINING_DAYS, as production
    timezone: str = "UTC"                       # schedule and day boundaries
    candidates: list[str] | None = None         # default: all
    params: dict[str, dict] = field(default_factory=dict)   # per-candidate overrides
    folds: int = DEFAULT_FOLDS
    max_train_windows: int | None = None
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES
    window_rounds: int = bandit.DEFAULT_WINDOW_ROUNDS
    confidence_z: float | None = bandit.DEFAULT_CONFIDENCE_Z
    compare_selections: tuple[tuple[int, float | None], ...] = ()   # other (window, z) to report
    exploration: float = bandit.DEFAULT_EXPLORATION
    bootstrap: int = 2000
    seed: int = 0

    def training_days(self) -> float:
        """``days``, or FORECAST_TRAINING_DAYS when unset (as production trains)."""
        if self.days is not None:
            return self.days
        from iot_core.settings import get_settings

        return get_settings().forecast_training_days


@dataclass
class Training:
    at_minute: int
    windows: int
    tuned: dict[str, Tuned]
    models: dict[str, object]
    seconds: float


def training_times(first_minute: int, last_minute: int, timezone: str) -> list[int]:
    """Local midnights between the first and last reading: candidates for the first training,
    and the Mondays of the weekly schedule."""
    days = pd.date_range(pd.Timestamp(local_days(np.array([first_minute]), timezone)[0]) + pd.Timedelta(days=1),
                         pd.Timestamp(local_days(np.array([last_minute]), timezone)[0]), freq="D")
    return [local_midnight_minute(np.datetime64(d.date()), timezone) for d in days]


def train_models(series: list, at_minute: int, config: BacktestConfig, names: list[str]) -> Training | None:
    """Production training as of ``at_minute``: the ``days`` before it, tuned and fitted; None
    when there are too few windows (production raises NotEnoughData and keeps the old models)."""
    started = time.perf_counter()
    since = at_minute - int(config.training_days() * 1440)
    parts = []
    for s in series:
        minutes, values = s.observations()
        keep = (minutes >= since) & (minutes < at_minute)
        if keep.sum() >= 2:
            parts.append(windows(from_observations(s.device_id, minutes[keep], values[keep], config.max_gap_minutes)))
    w = Windows.concat(parts)
    w = w.take(np.isfinite(w.y).any(axis=1))
    if len(w) < MIN_TRAIN_WINDOWS:
        return None
    fitted = fit_candidates(w, names, config.timezone, config.params, config.folds, config.max_train_windows)
    return Training(at_minute, len(w), {n: f.tuned for n, f in fitted.items()},
                    {n: f.model for n, f in fitted.items()}, time.perf_counter() - started)


def _bootstrap_ratios(day_err: np.ndarray, day_base: np.ndarray, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """95 % intervals over days of the per-horizon ratios and of the all-horizon ratio.
    day_err, day_base: (days, horizons) summed absolute errors."""
    n = len(day_err)
    if n < 2 or draws <= 0:
        per_h = np.stack([day_err.sum(0) / day_base.sum(0)] * 2, axis=1)
        total = np.array([day_err.sum() / day_base.sum()] * 2)
        return per_h, total
    idx = np.random.default_rng(seed).integers(0, n, size=(draws, n))
    err = day_err[idx].sum(axis=1)          # (draws, horizons)
    base = day_base[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_h = np.nanpercentile(err / base, [2.5, 97.5], axis=0).T
        total = np.nanpercentile(err.sum(1) / base.sum(1), [2.5, 97.5])
    return per_h, total


def _summary(err: np.ndarray, base: np.ndarray, points: np.ndarray, day_index: np.ndarray, n_days: int,
             config: BacktestConfig) -> dict:
    """Per-horizon MAE, ratio and interval from per-window absolute errors (n, 15), zero where not
    scored, the persistence errors on the same points, and the scored mask."""
    day_err = np.zeros((n_days, HORIZON_MINUTES))
    day_base = np.zeros((n_days, HORIZON_MINUTES))
    np.add.at(day_err, day_index, err)
    np.add.at(day_base, day_index, base)
    n = points.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = err.sum(0) / n
        ratio = err.sum(0) / base.sum(0)
    has = day_base.sum(axis=1) > 0
    per_h, total = _bootstrap_ratios(day_err[has], day_base[has], config.bootstrap, config.seed)
    key = [str(h) for h in range(1, HORIZON_MINUTES + 1)]
    rnd = _rounder(6)
    return {
        "mae": dict(zip(key, rnd(mae), strict=True)),
        "ratio": dict(zip(key, rnd(ratio), strict=True)),
        "ratio_interval": {k: rnd(v) for k, v in zip(key, per_h, strict=True)},
        "ratio_mean": rnd(err.sum() / base.sum()) if base.sum() else None,
        "ratio_mean_interval": rnd(total),
        "mae_mean": rnd(err.sum() / n.sum()) if n.sum() else None,
        "points": dict(zip(key, [int(v) for v in n], strict=True)),
        "ratio_by_day": rnd(np.where(day_base.sum(1) > 0, day_err.sum(1) / np.where(day_base.sum(1) > 0,
                                                                                     day_base.sum(1), 1), np.nan)),
    }


def _rounder(digits: int):
    def rnd(v):
        if isinstance(v, np.ndarray):
            return [None if not np.isfinite(x) else round(float(x), digits) for x in v.tolist()]
        v = float(v)
        return None if not np.isfinite(v) else round(v, digits)
    return rnd


def forecast_walk_forward(observations: dict[str, tuple[np.ndarray, np.ndarray]], config: BacktestConfig,
                          progress: Callable[[str], None] | None = None) -> WalkForward:
    """Steps 1 and 2: the trainings on the production schedule and every window's forecasts."""
    names = list(config.candidates or CANDIDATES)
    unknown = set(names) - set(CANDIDATES)
    if unknown:
        raise ValueError(f"unknown candidates {sorted(unknown)}; known: {sorted(CANDIDATES)}")
    if "persistence" not in names:
        names = ["persistence", *names]
    say = progress or (lambda msg: None)
    started = time.perf_counter()
    config.days = config.training_days()     # recorded in the result as the days actually used
    series = [from_observations(d, m, v, config.max_gap_minutes) for d, (m, v) in sorted(observations.items())]
    series = [s for s in series if len(s.values)]
    if not series:
        raise ValueError("no readings")
    first = min(s.start for s in series)
    last = max(s.start + len(s.values) - 1 for s in series)
    all_windows = Windows.concat([windows(s) for s in series])

    # 1. trainings: the first midnight with enough data, then every Monday midnight
    trainings: list[Training] = []
    times = training_times(first, last, config.timezone)
    mondays = [t for t in times if pd.Timestamp(t * 60, unit="s", tz="UTC").tz_convert(config.timezone).weekday() == 0]
    skipped_trainings = []
    for t in times:
        if trainings and t not in mondays:
            continue
        trained = train_models(series, t, config, names)
        if trained is None:
            if trainings:
                skipped_trainings.append(str(pd.Timestamp(t * 60, unit="s", tz="UTC")))
            continue
        trainings.append(trained)
        say(f"trained at {pd.Timestamp(t * 60, unit='s', tz='UTC').tz_convert(config.timezone):%Y-%m-%d %H:%M} "
            f"on {trained.windows} windows ({trained.seconds:.1f} s)")
    if not trainings:
        raise ValueError(f"not enough data for a first training: fewer than {MIN_TRAIN_WINDOWS} complete windows "
                         f"in any {config.days:g} days before a local midnight")

    # 2. forecasts of every window by the newest model set trained before it
    starts = np.array([t.at_minute for t in trainings])
    which = np.searchsorted(starts, all_windows.t0, side="right") - 1
    w = all_windows.take(which >= 0)
    which = which[which >= 0]
    scored = w.y_observed & np.isfinite(w.y)
    w = w.take(scored.any(axis=1))
    which = which[scored.any(axis=1)]
    scored = w.y_observed & np.isfinite(w.y)
    if len(w) == 0:
        raise ValueError("no window after the first training has a scored target")
    preds = {n: np.empty((len(w), HORIZON_MINUTES)) for n in names}
    for k, tr in enumerate(trainings):
        sel = which == k
        if sel.any():
            for n in names:
                preds[n][sel] = tr.models[n].predict(w.x[sel])
    abs_err = {n: np.where(scored, np.abs(preds[n] - w.y), 0.0) for n in names}

    settle_at = settle_minutes(w, {s.device_id: s.observations()[0] for s in series})
    for tr in trainings:
        tr.models = {}          # fitted models are not needed any more (and keep the result picklable)
    return WalkForward(names, w, scored, abs_err, settle_at, trainings, len(series), skipped_trainings,
                       time.perf_counter() - started)


@dataclass
class WalkForward:
    """Every window after the first training, forecast by every candidate of the models current at
    its issue minute: what the selection replay and the summaries are computed from."""

    names: list[str]
    w: Windows
    scored: np.ndarray                  # (n, 15) target had a reading
    abs_err: dict[str, np.ndarray]      # candidate -> (n, 15) absolute errors, 0 where not scored
    settle_at: np.ndarray               # (n,) minute each window's forecasts can be scored
    trainings: list[Training]
    devices: int
    skipped_trainings: list[str]
    seconds: float


def run_backtest(observations: dict[str, tuple[np.ndarray, np.ndarray]], config: BacktestConfig | None = None,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Walk-forward backtest of per-device observed minutes ``{device: (epoch minutes, values)}``
    (ml.series.observations_frame). Returns the JSON-able result (see the module doc)."""
    config = config or BacktestConfig()
    return evaluate(forecast_walk_forward(observations, config, progress), config)


def evaluate(wf: WalkForward, config: BacktestConfig) -> dict:
    """Steps 3 and 4: the selection replayed over the forecasts, and the summaries."""
    started = time.perf_counter()
    names, w, scored, abs_err, settle_at, trainings = wf.names, wf.w, wf.scored, wf.abs_err, wf.settle_at, wf.trainings
    base = abs_err["persistence"]

    # 3. the selection, round by round
    validation = [trainings[0].tuned[n].mae_ratio for n in names]
    chosen = select_replay(abs_err, w.t0, names, validation, settle_at, config.window_rounds, config.exploration,
                           config.confidence_z)
    system_err = np.stack([abs_err[n] for n in names])[chosen, np.arange(len(w))]
    sensitivity = {}
    for rounds, z in config.compare_selections:
        other = select_replay(abs_err, w.t0, names, validation, settle_at, rounds, config.exploration, z)
        err = np.stack([abs_err[n] for n in names])[other, np.arange(len(w))]
        sensitivity[f"window {rounds}, z {z}"] = {"ratio_15": _rounder(4)(err[:, -1].sum() / base[:, -1].sum()),
                                                  "ratio_mean": _rounder(4)(err.sum() / base.sum())}

    # 4. summaries
    day = local_days(w.t0, config.timezone)
    day_values, day_index = np.unique(day, return_inverse=True)
    result_models = {n: _summary(abs_err[n], base, scored, day_index, len(day_values), config) for n in names}
    system = _summary(system_err, base, scored, day_index, len(day_values), config)
    counts = np.bincount(chosen, minlength=len(names))
    if sensitivity:
        system["sensitivity"] = sensitivity
    system["choices"] = {n: int(c) for n, c in zip(names, counts, strict=True)}
    total = {n: float(abs_err[n].sum()) for n in names}
    best = min(total, key=total.get)
    points = int(scored.sum())
    system["regret"] = {
        "best_arm_in_hindsight": best,
        "vs_best_arm": round((float(system_err.sum()) - total[best]) / points, 6),
        "vs_persistence": round((float(system_err.sum()) - total["persistence"]) / points, 6),
        "unit": "mean absolute error difference per scored point (positive: the system was worse)",
    }
    best_candidate = min((n for n in names if n != "persistence"),
                         key=lambda n: result_models[n]["ratio"][str(HORIZON_MINUTES)] or np.inf, default=None)
    return {
        "config": {k: v for k, v in config.__dict__.items()},
        "devices": wf.devices,
        "windows_evaluated": len(w),
        "scored_points": points,
        "days_evaluated": len(day_values),
        "days": [str(d) for d in day_values],
        "persistence_mae": result_models["persistence"]["mae"],
        "models": result_models,
        "system": system,
        "best_candidate_h15": best_candidate,
        "trainings": [{
            "at": str(pd.Timestamp(t.at_minute * 60, unit="s", tz="UTC")), "windows": t.windows,
            "seconds": round(t.seconds, 2),
            "params": {n: t.tuned[n].params for n in names},
            "validation_mae_ratio": {n: _rounder(4)(t.tuned[n].mae_ratio) for n in names},
            "fold_days": next(iter(t.tuned.values())).fold_days,
            "tuning_seconds": {n: round(t.tuned[n].seconds, 2) for n in names},
        } for t in trainings],
        "scheduled_trainings_without_enough_data": wf.skipped_trainings,
        "seconds": round(wf.seconds + time.perf_counter() - started, 1),
    }


def settle_minutes(w: Windows, observed_minutes: dict[str, np.ndarray]) -> np.ndarray:
    """When each window's rewards settle: the device's first observed minute at or after t0 + 15
    (its actuals exist then); t0 + 15 when the device reports nothing later."""
    settle_at = w.t0 + HORIZON_MINUTES
    for device in np.unique(w.device):
        sel = np.flatnonzero(w.device == device)
        obs = observed_minutes[device]
        pos = np.searchsorted(obs, w.t0[sel] + HORIZON_MINUTES, side="left")
        later = pos < len(obs)
        settle_at[sel[later]] = obs[pos[later]]
    return settle_at


def select_replay(abs_err: dict[str, np.ndarray], t0: np.ndarray, names: list[str], validation_ratios: list[float],
                  settle_at: np.ndarray, window_rounds: int, exploration: float = bandit.DEFAULT_EXPLORATION,
                  confidence_z: float | None = bandit.DEFAULT_CONFIDENCE_Z) -> np.ndarray:
    """Index into ``names`` of the arm chosen for each window, replaying the production selection:
    one choice per issue minute ``t0`` (a round) from the forecasts settled by then (per device:
    ``settle_minutes``), only the forecasts of the last ``window_rounds`` rounds counting; before
    anything is settled, the order of ``validation_ratios`` (the first training's)."""
    import heapq

    n_arms = len(names)
    errors = np.column_stack([abs_err[n].sum(axis=1) for n in names])      # (windows, arms)
    base = abs_err["persistence"].sum(axis=1)
    diff_sq = (base[:, None] - errors) ** 2
    order = np.argsort(settle_at, kind="stable")
    rounds, round_of = np.unique(t0, return_inverse=True)
    fallback = sorted(range(n_arms), key=lambda j: (np.nan_to_num(validation_ratios[j], nan=np.inf), j))
    chosen_round = np.zeros(len(rounds), dtype=np.int64)
    heap: list[tuple[int, int]] = []
    err_sum = np.zeros(n_arms)
    sq_sum = np.zeros(n_arms)
    base_sum = 0.0
    count = 0
    ptr = 0
    for r, minute in enumerate(rounds):
        oldest = r - window_rounds        # rounds at or before this one have left the window
        while ptr < len(order) and settle_at[order[ptr]] <= minute:
            i = int(order[ptr])
            ptr += 1
            if round_of[i] > oldest:
                heapq.heappush(heap, (int(round_of[i]), i))
                err_sum += errors[i]
                sq_sum += diff_sq[i]
                base_sum += base[i]
                count += 1
        while heap and heap[0][0] <= oldest:
            _, i = heapq.heappop(heap)
            err_sum -= errors[i]
            sq_sum -= diff_sq[i]
            base_sum -= base[i]
            count -= 1
        arms = [bandit.ArmStats(names[j], count, max(float(err_sum[j]), 0.0), max(base_sum, 0.0),
                                max(float(sq_sum[j]), 0.0)) for j in fallback]
        first = max(oldest + 1, 0)
        overlap = bandit.overlap_rounds(r - first + 1, float(minute - rounds[first] + 1))
        idx, _ = bandit.choose(arms, exploration, confidence_z, overlap)
        chosen_round[r] = fallback[idx]
    return chosen_round[round_of]


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, default=str)


@dataclass
class CsvSeries:
    observations: dict[str, tuple[np.ndarray, np.ndarray]]
    rows: int
    problems: dict[str, dict]        # problem -> {"rows": n, "first_line": line number in the file}

    def report(self) -> dict:
        return {"rows": self.rows, "rows_used": self.rows - sum(p["rows"] for p in self.problems.values()),
                "rows_left_out": self.problems,
                "devices": len(self.observations),
                "observed_minutes": int(sum(len(m) for m, _ in self.observations.values()))}


def read_csv_series(path, time_column: str, value_column: str, device_column: str | None = None,
                    naive_timezone: str | None = None) -> CsvSeries:
    """A user's CSV of readings -> observed minutes per device (ml.series.observations_frame).

    Times must carry a UTC offset (``2021-11-01 00:10:00+00:00``, ``...Z``) unless
    ``naive_timezone`` says what zone offset-less times are in. Rows whose time or value cannot
    be read are left out and counted with the line of the first one (nothing is dropped
    silently); a file where no row can be used is an error."""
    from ml.series import observations_frame

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in (time_column, value_column, device_column) if c and c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in {path}; its columns are {list(df.columns)}")
    raw_time = df[time_column].str.strip()
    has_offset = raw_time.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)$", regex=True)
    times = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    if has_offset.any():
        times[has_offset] = pd.to_datetime(raw_time[has_offset], utc=True, errors="coerce", format="mixed")
    naive = ~has_offset & (raw_time != "")
    naive_parsed = pd.to_datetime(raw_time.where(naive), errors="coerce", format="mixed")
    if naive.any() and naive_timezone:
        localized = naive_parsed[naive].dt.tz_localize(naive_timezone, ambiguous="NaT", nonexistent="NaT")
        times[naive] = localized.dt.tz_convert("UTC")
    values = pd.to_numeric(df[value_column].str.strip(), errors="coerce")
    problems: dict[str, dict] = {}

    def note(problem: str, mask: pd.Series) -> None:
        if mask.any():
            problems[problem] = {"rows": int(mask.sum()), "first_line": int(np.flatnonzero(mask.to_numpy())[0]) + 2}

    no_offset = naive & naive_parsed.notna() & times.isna() if not naive_timezone \
        else pd.Series(False, index=df.index)
    note("time without a UTC offset (pass --naive-timezone)", no_offset)
    note("time not readable", times.isna() & ~no_offset)
    note("value not a finite number", times.notna() & ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan)))
    ok = times.notna() & np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if not ok.any():
        raise ValueError(f"no usable row in {path}: {problems}")
    frame = pd.DataFrame({"time": times[ok], "value": values[ok],
                          "device_id": df.loc[ok, device_column] if device_column else "series"})
    return CsvSeries(observations_frame(frame), len(df), problems)


def format_table(result: dict) -> str:
    """The backtest as text: per model and horizon the MAE, then the ratio to persistence with its
    interval at 15 minutes and over all horizons; the system's choices and regret."""
    hs = [str(h) for h in range(1, HORIZON_MINUTES + 1)]
    rows = [*result["models"].items(), ("SYSTEM (selection)", result["system"])]

    def cell(v, fmt):
        return f"{v:{fmt}}" if v is not None else "-".rjust(len(f"{0:{fmt}}"))

    lines = [f"walk-forward backtest: {result['devices']} device(s), {result['days_evaluated']} days evaluated, "
             f"{result['windows_evaluated']} forecasts, {len(result['trainings'])} trainings "
             f"(every Monday 00:00 {result['config']['timezone']} on the {result['config']['days']:g} days before)",
             "", "MAE per horizon (minutes ahead):",
             f"{'model':<20}" + "".join(f"{h:>8}" for h in hs)]
    for name, m in rows:
        lines.append(f"{name:<20}" + "".join(cell(m["mae"][h], "8.3f") for h in hs))
    lines += ["", "MAE ratio to persistence per horizon (below 1: better than persistence):",
              f"{'model':<20}" + "".join(f"{h:>7}" for h in hs)]
    for name, m in rows:
        lines.append(f"{name:<20}" + "".join(cell(m["ratio"][h], "7.3f") for h in hs))
    lines += ["", f"{'model':<20}{'ratio h15':>10}  {'95% interval (days)':<20}{'ratio mean':>11}  95% interval"]
    for name, m in rows:
        lo, hi = m["ratio_interval"]["15"]
        mlo, mhi = m["ratio_mean_interval"]
        lines.append(f"{name:<20}{cell(m['ratio']['15'], '10.3f')}  {f'[{lo:.3f}, {hi:.3f}]':<20}"
                     f"{cell(m['ratio_mean'], '11.3f')}  [{mlo:.3f}, {mhi:.3f}]")
    s = result["system"]
    lines += ["", "selection: chosen " + ", ".join(f"{k} {v}" for k, v in s["choices"].items()) + " rounds",
              f"regret per scored point: {s['regret']['vs_best_arm']:+.4f} against the best arm in hindsight "
              f"({s['regret']['best_arm_in_hindsight']}), {s['regret']['vs_persistence']:+.4f} against persistence"]
    return "\n".join(lines)
