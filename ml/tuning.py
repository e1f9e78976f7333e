"""Hyper-parameters by walk-forward validation over several weekdays.

The training span is cut into local days (``timezone``). A fold is one day: the model is fitted on
every window whose targets end before that day's midnight and scored on the windows issued that
day, at the minutes that had a reading. The folds are the last ``folds`` weekdays (Mon-Fri) that
have both enough windows to score and enough earlier windows to train on; other days fill in
only when the span has too few weekdays (a holiday week); when not even one earlier day exists (a
fresh install's first day) the last quarter of the span is the one fold. Each
candidate's parameter set with the lowest summed absolute error over all folds and horizons wins
(ties: the earlier set, the default), and its fold errors are the candidate's validation error.
(A single split at "the last 20 % before Monday 00:00" always validated on the weekend, and the
winner flipped from week to week.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.models import CANDIDATES, HORIZON_MINUTES
from ml.series import Windows

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 3
MIN_FOLD_WINDOWS = 30          # windows issued on a fold day
MIN_TRAIN_WINDOWS = 60         # windows before it


def local_days(epoch_minutes: np.ndarray, timezone: str) -> np.ndarray:
    """Local calendar day (numpy datetime64[D]) of each epoch minute."""
    ts = pd.to_datetime(np.asarray(epoch_minutes, dtype=np.int64) * 60, unit="s", utc=True).tz_convert(timezone)
    return ts.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")


def local_midnight_minute(day: np.datetime64, timezone: str) -> int:
    """Epoch minute of 00:00 local time on ``day``."""
    ts = pd.Timestamp(day).tz_localize(timezone, ambiguous=False, nonexistent="shift_forward")
    return int(ts.tz_convert("UTC").value // 60_000_000_000)


@dataclass
class Fold:
    day: np.datetime64
    train: np.ndarray     # bool mask over the windows
    val: np.ndarray


def weekday_folds(w: Windows, timezone: str, folds: int = DEFAULT_FOLDS) -> list[Fold]:
    """The last ``folds`` usable days, weekdays first (see the module doc); oldest first."""
    if len(w) == 0:
        return []
    day = local_days(w.t0, timezone)
    label_end = w.t0 + HORIZON_MINUTES
    usable = []
    for d in np.unique(day)[::-1]:
        val = day == d
        train = label_end < local_midnight_minute(d, timezone)
        if val.sum() >= MIN_FOLD_WINDOWS and train.sum() >= MIN_TRAIN_WINDOWS:
            usable.append(Fold(d, train, val))
    weekdays = [f for f in usable if pd.Timestamp(f.day).weekday() < 5]
    chosen = weekdays[:folds]
    if len(chosen) < folds:
        chosen += [f for f in usable if f not in chosen][: folds - len(chosen)]
    if not chosen:
        holdout = _holdout_fold(w)
        return [holdout] if holdout else []
    return sorted(chosen, key=lambda f: f.day)


def _holdout_fold(w: Windows, fraction: float = 0.25) -> Fold | None:
    """No whole earlier day to validate on (the first day of data): the last quarter of the span
    as one fold, the windows whose targets end before it as training."""
    cut = int(np.quantile(w.t0, 1 - fraction))
    val = w.t0 >= cut
    train = w.t0 + HORIZON_MINUTES < cut
    if val.sum() < MIN_FOLD_WINDOWS or train.sum() < MIN_TRAIN_WINDOWS:
        return None
    return Fold(np.datetime64("NaT"), train, val)


@dataclass
class Tuned:
    candidate: str
    params: dict
    # validation over the folds: per horizon, summed absolute error and scored points, and the
    # same for persistence on the same points
    abs_error: np.ndarray = field(default_factory=lambda: np.zeros(HORIZON_MINUTES))
    persistence_abs_error: np.ndarray = field(default_factory=lambda: np.zeros(HORIZON_MINUTES))
    points: np.ndarray = field(default_factory=lambda: np.zeros(HORIZON_MINUTES))
    fold_days: list[str] = field(default_factory=list)
    tried: dict[str, float] = field(default_factory=dict)      # params (json) -> validation MAE
    seconds: float = 0.0

    @property
    def mae_by_horizon(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.abs_error / self.points

    @property
    def persistence_mae_by_horizon(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.persistence_abs_error / self.points

    @property
    def mae(self) -> float:
        return float(self.abs_error.sum() / self.points.sum()) if self.points.sum() else float("nan")

    @property
    def persistence_mae(self) -> float:
        return float(self.persistence_abs_error.sum() / self.points.sum()) if self.points.sum() else float("nan")

    @property
    def mae_ratio(self) -> float:
        return float(self.abs_error.sum() / self.persistence_abs_error.sum()) \
            if self.persistence_abs_error.sum() else float("nan")


def subsample(w: Windows, max_windows: int | None, seed: int = 0) -> Windows:
    """At most ``max_windows`` windows, drawn evenly at random (seeded): keeps a fit affordable on a
    2-core host however many devices report."""
    if not max_windows or len(w) <= max_windows:
        return w
    keep = np.sort(np.random.default_rng(seed).choice(len(w), max_windows, replace=False))
    return w.take(keep)


def scored_errors(w: Windows, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(summed |error|, summed |persistence error|, points) per horizon at the observed targets."""
    mask = w.y_observed & np.isfinite(w.y)
    err = np.where(mask, np.abs(pred - w.y), 0.0).sum(axis=0)
    base = np.where(mask, np.abs(w.x[:, -1:] - w.y), 0.0).sum(axis=0)
    return err, base, mask.sum(axis=0).astype(float)


def tune(name: str, w: Windows, folds: list[Fold], overrides: dict | None = None,
         grid: tuple[dict, ...] | None = None, max_windows: int | None = None) -> Tuned:
    """Walk-forward validation of ``name``'s parameter grid (each set merged with ``overrides``);
    the winner's parameters and validation errors. Without folds: the first set, no errors."""
    started = time.perf_counter()
    cls = CANDIDATES[name]
    grid = grid or cls.param_grid
    sets = [{**p, **(overrides or {})} for p in grid]
    unique = list({repr(sorted(p.items())): p for p in sets}.values())
    if not folds:
        return Tuned(name, unique[0], seconds=time.perf_counter() - started)
    best: Tuned | None = None
    tried: dict[str, float] = {}
    for params in unique:
        t = Tuned(name, params, fold_days=[str(f.day) if not np.isnat(f.day) else "last quarter" for f in folds])
        for fold in folds:
            train = subsample(w.take(fold.train), max_windows)
            val = w.take(fold.val)
            model = cls(**params).fit(train.x, train.y)
            err, base, n = scored_errors(val, model.predict(val.x))
            t.abs_error += err
            t.persistence_abs_error += base
            t.points += n
        tried[repr(sorted(params.items()))] = t.mae
        log.debug("%s %s: validation MAE %.4f", name, params, t.mae)
        if best is None or t.abs_error.sum() < best.abs_error.sum():
            best = t
    best.tried = tried
    best.seconds = time.perf_counter() - started
    return best


@dataclass
class Fitted:
    tuned: Tuned
    model: object
    fit_seconds: float


def fit_candidates(w: Windows, names: list[str], timezone: str, params: dict[str, dict] | None = None,
                   folds: int = DEFAULT_FOLDS, max_windows: int | None = None,
                   progress=None) -> dict[str, Fitted]:
    """What a training does, for production (ml.training) and the backtest alike: the weekday folds
    of ``w``, each candidate tuned over them, then fitted with the winning parameters on all of
    ``w`` (at most ``max_windows``, drawn evenly)."""
    fold_list = weekday_folds(w, timezone, folds)
    full = subsample(w, max_windows)
    out = {}
    for i, name in enumerate(names, 1):
        tuned = tune(name, w, fold_list, (params or {}).get(name), max_windows=max_windows)
        started = time.perf_counter()
        model = CANDIDATES[name](**tuned.params).fit(full.x, full.y)
        out[name] = Fitted(tuned, model, time.perf_counter() - started)
        if progress:
            progress(f"[{i}/{len(names)}] {name}: {tuned.params or 'no parameters'}, validation MAE ratio "
                     f"{tuned.mae_ratio:.3f} over {', '.join(tuned.fold_days) or 'no fold'} "
                     f"({tuned.seconds + out[name].fit_seconds:.1f} s)")
    return out
