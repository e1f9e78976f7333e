"""The walk-forward backtest (ml.backtest) and `iot backtest` on a small CSV (no services)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from ml_testdata import sparse_iaq, synthetic_iaq

from ml.backtest import BacktestConfig, read_csv_series, run_backtest, train_models
from ml.series import epoch_minutes, from_observations, observations_frame

END = datetime(2026, 11, 26, tzinfo=UTC)        # a Thursday: 10 days back covers two Mondays
FAST = ["damped_trend", "ridge"]
HORIZONS = [str(h) for h in range(1, 16)]


def _observations(rows):
    df = pd.DataFrame(rows, columns=["time", "device_id", "value", "is_interpolated"])
    return observations_frame(df)


@pytest.fixture(scope="module")
def result():
    rows = synthetic_iaq(devices=2, minutes=10 * 1440, end=END, seed=5)
    return run_backtest(_observations(rows), BacktestConfig(candidates=FAST, bootstrap=300))


def test_every_day_is_forecast_by_models_trained_on_the_production_schedule(result):
    trainings = [pd.Timestamp(t["at"]) for t in result["trainings"]]
    # the first midnight with enough data, then Mondays 00:00 only
    assert trainings[0] == pd.Timestamp("2026-11-17", tz="UTC")
    assert all(t.weekday() == 0 and t.hour == 0 for t in trainings[1:]) and len(trainings) == 2
    assert result["days"][0] == "2026-11-17" and result["days_evaluated"] == 9     # Nov 17-25
    assert result["trainings"][1]["fold_days"] == ["2026-11-18", "2026-11-19", "2026-11-20"]   # Wed-Fri


def test_json_has_the_ratio_of_every_model_and_horizon_with_intervals(result):
    assert set(result["models"]) == {"persistence", *FAST}
    for name, m in [*result["models"].items(), ("system", result["system"])]:
        assert set(m["ratio"]) == set(HORIZONS) and m["ratio_mean"] is not None
        for h in HORIZONS:
            lo, hi = m["ratio_interval"][h]
            assert lo <= m["ratio"][h] + 1e-9 and m["ratio"][h] <= hi + 1e-9, (name, h)
    assert all(v == 1.0 for v in result["models"]["persistence"]["ratio"].values())
    assert result["models"]["ridge"]["ratio"]["15"] < 0.8          # the synthetic series is forecastable
    assert result["system"]["ratio"]["15"] < 1.0
    regret = result["system"]["regret"]
    assert regret["best_arm_in_hindsight"] in result["models"] and regret["vs_persistence"] < 0
    assert sum(result["system"]["choices"].values()) == result["windows_evaluated"]


def test_a_training_sees_only_readings_before_its_time():
    """Readings after the training time are wild (1e6): a model that saw them would be wrecked."""
    minutes = np.arange(3 * 1440) + 28_000_000
    values = 100 + 10 * np.sin(minutes / 50.0)
    cut = int(minutes[0] + 2 * 1440)
    values[minutes >= cut] = 1e6
    series = from_observations("d", minutes, values)
    trained = train_models([series], cut, BacktestConfig(candidates=FAST), ["persistence", *FAST])
    x = (100 + 10 * np.sin((minutes[:60] + 7) / 50.0))[None, :]
    assert np.abs(trained.models["ridge"].predict(x) - 100).max() < 30


def _write_csv(path, rows, bad=True):
    frame = pd.DataFrame(rows, columns=["time", "device_id", "value", "is_interpolated"])
    lines = ["ts,sensor,co2"]
    lines += [f"{t.isoformat()},{d},{v:.1f}" for t, d, v in frame[["time", "device_id", "value"]].itertuples(index=False)]
    if bad:
        lines += ["2026-11-20 10:00:00,livingston,420", "not a time,livingston,420", "2026-11-20T10:00:00Z,livingston,n/a"]
    path.write_text("\n".join(lines) + "\n")


def test_iot_backtest_on_a_small_csv_prints_json_for_other_tools(tmp_path):
    """A sensor reporting every 5-15 minutes (times with offsets), three unusable rows."""
    from iot_cli.commands.backtest import command

    rows = sparse_iaq("livingston", 10 * 1440, end=END)
    csv = tmp_path / "co2.csv"
    _write_csv(csv, rows)
    run = CliRunner().invoke(command, ["--csv", str(csv), "--time-column", "ts", "--value-column", "co2",
                                       "--device-column", "sensor", "--json", "--bootstrap", "200",
                                       *[a for c in FAST for a in ("--candidate", c)]])
    assert run.exit_code == 0, run.output + repr(run.exception)
    out = json.loads(run.stdout)
    for m in [*out["models"].values(), out["system"]]:
        assert set(m["ratio"]) == set(HORIZONS) and isinstance(m["ratio_mean"], float)
    # scored only where a reading fell: some horizons have none of the 5-minute multiples
    assert out["models"]["persistence"]["ratio"]["5"] == 1.0
    left_out = out["input"]["rows_left_out"]
    assert left_out["time without a UTC offset (pass --naive-timezone)"]["rows"] == 1
    assert left_out["time not readable"] == {"rows": 1, "first_line": len(rows) + 3}
    assert left_out["value not a finite number"]["rows"] == 1
    assert "left out 1 of" in run.stderr and "trained at" in run.stderr


def test_iot_backtest_prints_a_table_and_refuses_what_it_cannot_read(tmp_path):
    from iot_cli.commands.backtest import command

    rows = synthetic_iaq(devices=1, minutes=4 * 1440, end=END, seed=2)
    csv = tmp_path / "iaq.csv"
    _write_csv(csv, rows, bad=False)
    run = CliRunner().invoke(command, ["--csv", str(csv), "--time-column", "ts", "--value-column", "co2",
                                       "--candidate", "damped_trend", "--bootstrap", "100"])
    assert run.exit_code == 0, run.output + repr(run.exception)
    assert "MAE ratio to persistence per horizon" in run.stdout and "SYSTEM (selection)" in run.stdout
    bad = CliRunner().invoke(command, ["--csv", str(csv), "--time-column", "when", "--value-column", "co2"])
    assert bad.exit_code != 0 and "column(s) ['when'] not in" in bad.output


def test_naive_times_are_read_in_the_zone_given():
    import io

    text = "time,value\n2026-11-20 10:00:00,1\n2026-11-20 10:01:00,2\n"
    with pytest.raises(ValueError, match="no usable row"):
        read_csv_series(io.StringIO(text), "time", "value")
    series = read_csv_series(io.StringIO(text), "time", "value", naive_timezone="Europe/London")
    minutes, _ = series.observations["series"]
    assert minutes[0] == epoch_minutes([datetime(2026, 11, 20, 10, tzinfo=UTC)])[0]
    assert series.report()["rows_used"] == 2
