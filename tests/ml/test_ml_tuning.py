"""Walk-forward validation over weekdays (ml.tuning), no services."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from ml_testdata import synthetic_iaq

from ml.series import HORIZON_MINUTES, Windows, from_observations, observations_frame, windows
from ml.tuning import fit_candidates, local_midnight_minute, tune, weekday_folds

SUNDAY_NIGHT = datetime(2026, 11, 23, tzinfo=UTC)   # a Monday 00:00: what the weekly training sees


def _week(devices: int = 2) -> Windows:
    rows = synthetic_iaq(devices=devices, minutes=7 * 1440, end=SUNDAY_NIGHT, seed=4)
    df = pd.DataFrame(rows, columns=["time", "device_id", "value", "is_interpolated"])
    return Windows.concat([windows(from_observations(d, m, v), stride=5) for d, (m, v) in observations_frame(df).items()])


def test_folds_are_the_last_weekdays_not_the_weekend_and_train_only_on_earlier_data():
    w = _week()
    folds = weekday_folds(w, "UTC", 3)
    assert [str(f.day) for f in folds] == ["2026-11-18", "2026-11-19", "2026-11-20"]   # Wed, Thu, Fri
    for f in folds:
        midnight = local_midnight_minute(f.day, "UTC")
        assert (w.t0[f.train] + HORIZON_MINUTES < midnight).all()      # targets end before the fold day
        assert ((w.t0[f.val] >= midnight) & (w.t0[f.val] < midnight + 1440)).all()


def test_fold_days_follow_the_training_timezone():
    w = _week()
    folds = weekday_folds(w, "Australia/Sydney", 3)          # seed 000: UTC+11
    for f in folds:
        midnight = local_midnight_minute(f.day, "Australia/Sydney")
        assert midnight % 1440 == 13 * 60                     # 00:00 in Sydney is 13:00 UTC
        assert pd.Timestamp(f.day).weekday() < 5


def test_without_an_earlier_day_the_last_quarter_is_the_fold():
    w = _week()
    first_day = w.take(w.t0 < w.t0.min() + 1200)
    folds = weekday_folds(first_day, "UTC", 3)
    assert len(folds) == 1 and np.isnat(folds[0].day)
    assert first_day.t0[folds[0].val].min() > first_day.t0[folds[0].train].max() + HORIZON_MINUTES


def test_tuning_picks_the_parameters_with_the_lowest_validation_error():
    w = _week()
    folds = weekday_folds(w, "UTC", 3)
    grid = ({"slope_minutes": 10, "phi": 0.9}, {"slope_minutes": 5, "phi": 0.0})   # phi 0 = persistence
    tuned = tune("damped_trend", w, folds, grid=grid)
    errors = {k: v for k, v in tuned.tried.items()}
    assert tuned.params == min(grid, key=lambda p: errors[repr(sorted(p.items()))])
    assert tuned.fold_days == ["2026-11-18", "2026-11-19", "2026-11-20"]
    assert tuned.mae == min(errors.values()) and tuned.points.sum() > 0
    fitted = fit_candidates(w, ["persistence", "damped_trend"], "UTC")
    assert fitted["persistence"].tuned.mae_ratio == 1.0
    assert fitted["damped_trend"].model.predict(w.x[:3]).shape == (3, HORIZON_MINUTES)
