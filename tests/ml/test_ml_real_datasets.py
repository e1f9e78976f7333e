"""The real recorded series of ../shared/data as the forecast benchmark reads them (skipped without
the folder), and one walk-forward backtest on real data."""

from __future__ import annotations

import pytest

from benchmarks.forecast.datasets import DATASETS, load
from ml.backtest import BacktestConfig, run_backtest
from ml.series import observations_frame


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_real_dataset_loads_as_readings(shared_data_dir, name):
    frame = load(name, shared_data_dir)
    assert list(frame.columns) == ["time", "device_id", "value"] and len(frame) > 5000
    assert str(frame["time"].dt.tz) == "UTC"
    assert frame["value"].notna().mean() > 0.99
    obs = observations_frame(frame)
    assert all(len(m) > 100 for m, _ in obs.values())


def test_walk_forward_on_real_room_humidity_beats_persistence(shared_data_dir):
    """Four nodes, trained on day 1, every window of day 2 forecast (fast candidates only)."""
    result = run_backtest(observations_frame(load("room_climate_humidity", shared_data_dir)),
                          BacktestConfig(candidates=["damped_trend", "ridge"], bootstrap=100))
    assert result["devices"] == 4 and result["days"] == ["2016-03-16"]
    assert result["models"]["ridge"]["ratio"]["15"] < 0.85
    assert result["system"]["ratio"]["15"] < 1.0
