"""ml.series: windows issued at readings, inputs only from earlier readings (no services)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.series import (
    HORIZON_MINUTES,
    INPUT_MINUTES,
    Windows,
    from_observations,
    latest_window,
    observations_frame,
    windows,
)


def _irregular(seed: int = 0, days: float = 2, max_gap: int = 15):
    """A sensor reporting every 5, 10 or 15 minutes (like the Livingston office's LoRaWAN uplinks)."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([5, 10, 15], size=int(days * 1440 / 8), p=[0.2, 0.2, 0.6])
    minutes = 28_000_000 + np.cumsum(steps)
    values = 420 + 40 * np.sin(minutes / 90) + rng.normal(0, 3, len(minutes))
    return minutes, values


def test_inputs_of_an_irregular_sensor_use_no_reading_after_the_issue_minute():
    minutes, values = _irregular()
    full = from_observations("s", minutes, values, max_gap_minutes=30)
    w = windows(full)
    assert len(w) > 100
    assert np.isin(w.t0, minutes).all()                   # issued at readings only
    for i in range(0, len(w), 17):                        # the same input from the readings known at t0
        known = full.until(int(w.t0[i]) + 1)
        x, t0, reason = latest_window(known)
        assert reason is None and t0 == w.t0[i]
        np.testing.assert_array_equal(x, w.x[i])
    # targets: scored only where a reading fell, otherwise interpolated labels
    assert 0 < w.y_observed.mean() < 0.3
    assert np.isfinite(w.y).mean() > 0.9


def test_a_window_ending_at_an_interpolated_minute_would_see_the_future():
    """Why windows start at readings: the stage layer's interpolated minute right before a reading
    already carries that reading; an input ending there leaks it."""
    minutes = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80]) + 1000
    values = np.array([0, 0, 0, 0, 0, 0, 0, 0, 100.0])
    s = from_observations("s", minutes, values, max_gap_minutes=30)
    assert s.values[79 + 0] > 0            # minute 1079 (interpolated) already moves towards 100
    w = windows(s)
    assert set(w.t0) <= set(minutes)       # no window ends at 1079


def test_gaps_longer_than_the_limit_stay_gaps_and_are_reported():
    minutes = np.r_[np.arange(0, 100), np.arange(140, 260)] + 5000
    s = from_observations("s", minutes, np.ones(len(minutes)), max_gap_minutes=30)
    assert np.isnan(s.values[100:140]).all()
    w = windows(s)
    assert len(w) and not ((w.t0 >= 5140) & (w.t0 < 5140 + INPUT_MINUTES - 1)).any()
    x, t0, reason = latest_window(from_observations("s", minutes[:130], np.ones(130), 30))
    assert x is None and reason.startswith("not enough recent data: 30 of the last 60 minutes lie in gaps")
    x, t0, reason = latest_window(from_observations("s", np.arange(30) + 5000, np.ones(30), 30))
    assert x is None and "readings cover only 30 of the last 60" in reason


def test_observations_are_minute_means_and_bad_values_are_not_readings():
    import pandas as pd

    df = pd.DataFrame({"time": ["2026-01-01T00:00:10Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00+01:00",
                                "2026-01-01T00:02:00Z"],
                       "value": [1.0, 3.0, np.nan, 5.0], "device_id": "d"})
    obs = observations_frame(df)
    minutes, values = obs["d"]
    assert values.tolist() == [2.0, 5.0] and (minutes[1] - minutes[0]) == 2


def test_windows_concat_and_shapes():
    s = from_observations("a", np.arange(200) + 10, np.arange(200.0), 30)
    w = Windows.concat([windows(s), windows(s, stride=3)])
    assert w.x.shape[1] == INPUT_MINUTES and w.y.shape[1] == HORIZON_MINUTES
    assert np.isnan(windows(s).y[-1]).all()     # the newest window's future is unknown
    with pytest.raises(ValueError, match="sorted"):
        from_observations("a", np.array([3, 2]), np.array([1.0, 2.0]))
