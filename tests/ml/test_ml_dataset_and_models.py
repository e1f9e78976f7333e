"""Windows, the time split and the candidates, on in-memory series (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from ml_testdata import synthetic_iaq

from ml.dataset import WINDOW, build_dataset, device_windows
from ml.models import CANDIDATES, ForecastPyfunc, Persistence, errors_by_horizon

END = datetime(2026, 11, 20, tzinfo=UTC)


def _frame(rows):
    df = pd.DataFrame(rows, columns=["time", "device_id", "iaq", "is_interpolated"])
    df["time"] = pd.to_datetime(df["time"], utc=True)
    return df


def test_windows_never_cross_a_gap():
    times = pd.date_range("2026-11-20", periods=200, freq="min", tz="UTC")
    values = np.arange(200, dtype=float)
    keep = np.ones(200, dtype=bool)
    keep[100:110] = False                       # a 10-minute hole
    starts, windows = device_windows(times[keep], values[keep])
    assert windows.shape[1] == WINDOW
    assert (np.diff(windows, axis=1) == 1).all()   # consecutive minutes only
    assert len(windows) == (100 - WINDOW + 1) + (90 - WINDOW + 1)


def test_split_by_time_without_leakage_and_short_devices_left_out_with_reason():
    rows = synthetic_iaq(devices=2, minutes=2 * 1440, end=END)
    rows += [(END - timedelta(minutes=i), "short-device", 50.0, False) for i in range(100)]
    data = build_dataset(_frame(rows), val_fraction=0.25, stride=1, min_windows=60)
    assert data.devices == ["aq-000", "aq-001"]
    assert "short-device" in data.skipped and "need 60" in data.skipped["short-device"]
    assert len(data.x_train) > 3 * len(data.x_val) * 0.9 and len(data.x_val) > 0
    # the last training target minute is before the first validation input minute
    train_vals = {tuple(w) for w in np.hstack([data.x_train, data.y_train])[:, -5:]}
    val_vals = {tuple(w) for w in data.x_val[:, :5]}
    assert not (train_vals & val_vals)


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_candidate_maps_60_minutes_to_15(name):
    data = build_dataset(_frame(synthetic_iaq(devices=2, minutes=1440, end=END)), stride=3)
    small = {"lightgbm": {"n_estimators": 10}, "mlp": {"max_iter": 20}}.get(name, {})
    model = CANDIDATES[name](**small).fit(data.x_train, data.y_train)
    pred = ForecastPyfunc(model).predict(None, data.x_val[:7])
    assert pred.shape == (7, 15) and np.isfinite(pred).all()
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((2, 59)))


def test_learnt_models_beat_persistence_on_a_forecastable_series():
    data = build_dataset(_frame(synthetic_iaq(devices=3, minutes=2 * 1440, end=END)), stride=2)
    base, _ = errors_by_horizon(data.y_val, Persistence().fit(data.x_train, data.y_train).predict(data.x_val))
    ridge, _ = errors_by_horizon(data.y_val, CANDIDATES["ridge"]().fit(data.x_train, data.y_train).predict(data.x_val))
    assert ridge.mean() < 0.8 * base.mean()
    assert base[0] < base[-1]   # persistence degrades with the horizon
