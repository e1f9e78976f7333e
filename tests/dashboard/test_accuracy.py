"""The Forecasting page's error frames: weighted by the number of predictions behind each row."""

import pandas as pd
import pytest

from dashboard import accuracy

FRAME = pd.DataFrame({
    "day": pd.to_datetime(["2026-12-01", "2026-12-01", "2026-12-01", "2026-12-02", "2026-12-02"]),
    "model_name": ["ridge", "gbm", "ridge", "ridge", "gbm"],
    "horizon_minutes": [5, 5, 10, 5, 5],
    "mae": [2.0, 4.0, 3.0, 1.0, 5.0],
    "persistence_mae": [4.0, 5.0, 6.0, 2.0, 2.5],
    "predictions": [30, 10, 20, 1, 3],
})


def test_persistence_is_weighted_by_the_predictions_of_each_model_on_that_day():
    daily = accuracy.persistence_by_day(FRAME).set_index(["day", "horizon_minutes"])["mae"]
    assert daily[(pd.Timestamp("2026-12-01"), 5)] == pytest.approx((4.0 * 30 + 5.0 * 10) / 40)
    assert daily[(pd.Timestamp("2026-12-01"), 10)] == pytest.approx(6.0)
    assert daily[(pd.Timestamp("2026-12-02"), 5)] == pytest.approx((2.0 * 1 + 2.5 * 3) / 4)
    assert set(accuracy.persistence_by_day(FRAME)["model_name"]) == {accuracy.PERSISTENCE}


def test_the_ratio_weights_days_by_their_predictions_not_equally():
    ratios = accuracy.ratio_by_model(FRAME)
    # ridge at 5 minutes: 30 predictions at MAE 2 (persistence 4) outweigh 1 at MAE 1 (persistence 2)
    assert ratios.loc["ridge", 5] == pytest.approx((2.0 * 30 + 1.0) / (4.0 * 30 + 2.0))
    assert ratios.loc["gbm", 5] == pytest.approx((4.0 * 10 + 5.0 * 3) / (5.0 * 10 + 2.5 * 3))
    assert ratios.loc["ridge", 10] == pytest.approx(0.5)
    assert pd.isna(ratios.loc["gbm", 10])  # never scored at 10 minutes: no ratio, not zero
    assert list(ratios.columns) == [5, 10]
