"""The candidates on in-memory series (no services): interface, gaps in targets, MAE-aligned fits."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from ml_testdata import synthetic_iaq

from ml.models import CANDIDATES, DampedTrend, ForecastPyfunc, Persistence, errors_by_horizon
from ml.series import Windows, from_observations, observations_frame, windows

END = datetime(2026, 11, 20, tzinfo=UTC)
SMALL = {"lightgbm": {"n_estimators": 20}, "mlp": {"max_iter": 30}}


def _windows(rows) -> Windows:
    df = pd.DataFrame(rows, columns=["time", "device_id", "value", "is_interpolated"])
    return Windows.concat([windows(from_observations(d, m, v)) for d, (m, v) in observations_frame(df).items()])


def _split(w: Windows, fraction: float = 0.7) -> tuple[Windows, Windows]:
    cut = np.quantile(w.t0, fraction)
    train = w.take(w.t0 + 15 < cut)
    test = w.take((w.t0 >= cut) & np.isfinite(w.y).all(axis=1))
    return train, test


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_candidate_maps_60_minutes_to_15_and_accepts_gaps_in_targets(name):
    w = _windows(synthetic_iaq(devices=2, minutes=1440, end=END))
    y = w.y.copy()
    y[::7, 3:9] = np.nan                              # targets without a reading or interpolation
    model = CANDIDATES[name](**SMALL.get(name, {})).fit(w.x, y)
    pred = ForecastPyfunc(model).predict(None, w.x[:7])
    assert pred.shape == (7, 15) and np.isfinite(pred).all()
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((2, 59)))


def test_learnt_models_beat_persistence_on_a_forecastable_series():
    train, test = _split(_windows(synthetic_iaq(devices=3, minutes=2 * 1440, end=END)))
    base, _ = errors_by_horizon(test.y, Persistence().fit(train.x, train.y).predict(test.x))
    ridge, _ = errors_by_horizon(test.y, CANDIDATES["ridge"]().fit(train.x, train.y).predict(test.x))
    assert ridge.mean() < 0.8 * base.mean()
    assert base[0] < base[-1]   # persistence degrades with the horizon


def _flat_then_moving(seed: int, minutes: int = 6 * 1440) -> np.ndarray:
    """Like an office CO2 sensor: flat stretches (persistence exact), rises and falls, integer ppm,
    rare outliers."""
    rng = np.random.default_rng(seed)
    x = np.zeros(minutes)
    level, i = 420.0, 0
    while i < minutes:
        n = int(rng.integers(60, 240))
        x[i:i + n] = level
        i += n
        n = int(rng.integers(30, 120))
        seg = level + rng.choice([-1, 1]) * rng.uniform(0.5, 3) * np.arange(1, n + 1) + np.cumsum(rng.normal(0, 1.5, n))
        x[i:i + n] = seg[:max(0, min(n, minutes - i))]
        i += n
        level = float(x[min(i, minutes) - 1])
    return np.round(x + (rng.random(minutes) < 0.02) * rng.normal(0, 30, minutes))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_mae_aligned_fit_does_not_lose_in_flat_stretches(seed):
    """Issue 15: fitted on squared error the linear model lost to persistence where the series is
    flat (1.33-1.51x persistence's error on these windows, 0.75-0.80x overall); with the Huber fit
    of a correction to persistence it stays close there (1.09-1.15x) and wins overall (0.69-0.71x)."""
    x = _flat_then_moving(seed)
    w = windows(from_observations("co2", np.arange(len(x)) + 10_000_000, x))
    train, test = _split(w)
    pred = CANDIDATES["ridge"]().fit(train.x, train.y).predict(test.x)
    persistence = test.x[:, -1:]
    flat = np.ptp(test.x[:, -30:], axis=1) == 0
    assert 0.2 < flat.mean() < 0.4
    flat_ratio = np.abs(pred[flat] - test.y[flat]).mean() / np.abs(persistence[flat] - test.y[flat]).mean()
    overall = np.abs(pred - test.y).mean() / np.abs(persistence - test.y).mean()
    assert flat_ratio < 1.25 and overall < 0.75, (flat_ratio, overall)


def test_damped_trend_continues_a_slope_and_persistence_is_its_zero():
    x = np.tile(np.arange(60.0), (2, 1))               # rising by 1 a minute
    straight = DampedTrend(slope_minutes=10, phi=1.0).fit(x, np.zeros((2, 15))).predict(x)
    np.testing.assert_allclose(straight[0], 59 + np.arange(1, 16))
    damped = DampedTrend(slope_minutes=10, phi=0.5).fit(x, np.zeros((2, 15))).predict(x)
    assert damped[0, -1] == pytest.approx(59 + 1.0, abs=1e-3)      # 0.5 + 0.25 + ... -> 1
    assert (np.diff(damped[0]) > 0).all()


def test_errors_by_horizon_count_only_scored_points():
    y = np.array([[1.0] * 15, [np.nan] * 15])
    pred = np.zeros((2, 15))
    scored = np.ones((2, 15), dtype=bool)
    scored[0, 5] = False
    mae, _ = errors_by_horizon(y, pred, scored)
    assert mae[0] == 1.0 and np.isnan(mae[5])
