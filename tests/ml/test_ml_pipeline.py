"""Training and forecasting end to end: real PostgreSQL, the MLflow SQL backend, Airflow dag.test()."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ml_testdata import add_iaq_minutely, reset_iaq_minutely, reset_ml_tables, sparse_iaq, synthetic_iaq

from iot_core.connections import pg_connect

DEVICES = 3
CANDIDATES = {"persistence", "damped_trend", "ridge", "lightgbm", "mlp"}
SMALL = {"lightgbm": {"n_estimators": 20}, "mlp": {"max_iter": 30, "hidden_layer_sizes": [16]}}
LAG = 40   # minutes the lagging device is behind


def _query(sql, *args):
    with pg_connect("transformer") as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


@pytest.fixture(scope="module")
def trained(platform, mlflow_backend, load_dag):
    """Two days of synthetic IAQ for 3 devices ending now, a device reporting every 5-15 minutes,
    a device whose readings stop LAG minutes early (they arrive later: test below), one with too
    little data and one that went silent; the candidates trained through the real DAG."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = synthetic_iaq(DEVICES, 2 * 1440, end=now)
    rows += sparse_iaq("aq-sparse", 2 * 1440, end=now)
    lag_rows = [(t, "aq-lag", v, i) for t, _d, v, i in synthetic_iaq(1, 2 * 1440, end=now, seed=9)]
    rows += [r for r in lag_rows if r[0] <= now - timedelta(minutes=LAG)]
    rows += [(now - timedelta(minutes=i), "aq-short", 80.0, False) for i in range(30)]
    rows += [(now - timedelta(minutes=i), "aq-stale", 90.0, False) for i in range(20, 100)]  # silent 20 min
    reset_iaq_minutely(rows)
    reset_ml_tables()
    run = load_dag("iot_train_models").test(run_conf={"days": 3, "stride": 3, "model_params": SMALL})
    assert run.state == "success"
    return now, lag_rows


def test_training_registers_every_candidate_with_an_alias_and_its_tuning(trained):
    from mlflow import MlflowClient

    from ml import registry

    candidates = dict(_query("select candidate, model_version from ml.model_candidates where is_current"))
    assert set(candidates) == CANDIDATES
    client = MlflowClient()
    for name, version in candidates.items():
        mv = client.get_model_version_by_alias(registry.REGISTERED_MODEL, name)
        assert str(mv.version) == version
        run = client.get_run(mv.run_id)
        assert {"mae", "mae_ratio", "persistence_mae", "mae_h15", "mae_ratio_h15"} <= set(run.data.metrics)
        assert run.data.params["candidate"] == name and run.data.params["fold_days"] != "none"
    rows = _query("select candidate, mae_ratio, params, fold_days from ml.model_candidates where is_current")
    ratios = {c: r for c, r, _, _ in rows}
    assert ratios["persistence"] == pytest.approx(1.0)
    assert ratios["ridge"] < 0.8          # the synthetic series is forecastable
    params = {c: p for c, _, p, _ in rows}
    assert set(params["damped_trend"]) == {"slope_minutes", "phi"}
    assert params["lightgbm"]["n_estimators"] == 20                     # the override reached every set
    assert all(fold_days for *_, fold_days in rows)


def test_model_signature_is_60_to_15(trained):
    import mlflow

    from ml import registry

    for name in ("ridge", "damped_trend"):
        info = mlflow.models.get_model_info(f"models:/{registry.REGISTERED_MODEL}@{name}")
        assert info.signature.inputs.inputs[0].shape == (-1, 60)
        assert info.signature.outputs.inputs[0].shape == (-1, 15)


def test_forecast_dag_writes_15_future_rows_per_device_irregular_one_included(trained, load_dag):
    now, _ = trained
    run = load_dag("iot_forecast").test(logical_date=now)    # the minute the data ends (training took a while)
    assert run.state == "success"
    rows = _query("select device_id, count(*), min(time), max(time), min(issued_at),"
                  " array_agg(distinct measure_name) from ml.predictions group by device_id")
    by_device = {r[0]: r for r in rows}
    # the device reporting every 5-15 minutes is forecast (issue 15: it never was); the lagging,
    # short and silent ones are not
    assert set(by_device) == {f"aq-{d:03d}" for d in range(DEVICES)} | {"aq-sparse"}
    for _device, count, first, last, issued, names in rows:
        assert count == 15
        assert first == issued + timedelta(minutes=1) and last == issued + timedelta(minutes=15)
        assert set(names) == {f"iaq~{h}" for h in range(1, 16)}
    assert by_device["aq-000"][3] > now                 # predictions lie in the future
    (skipped,) = _query("select skipped from ml.forecast_runs order by finished_at desc limit 1")[0]
    assert skipped["devices"]["aq-short"].startswith("not enough recent data:")
    assert skipped["devices"]["aq-stale"].startswith("stale:")
    assert skipped["devices"]["aq-lag"].startswith("stale:")

    # every arm forecast every device, pending until the actuals exist
    arms = _query("select arm, count(*) from ml.arm_forecasts group by arm")
    assert dict(arms) == {a: DEVICES + 1 for a in CANDIDATES}

    # the chosen model holds the champion alias; the best validation model is tried first
    from mlflow import MlflowClient

    from ml import registry

    arm, version = _query("select arm, model_version from ml.model_selections")[0]
    best = _query("select candidate from ml.model_candidates where is_current order by mae_ratio limit 1")[0][0]
    assert arm == best
    assert str(MlflowClient().get_model_version_by_alias(registry.REGISTERED_MODEL, "champion").version) == version

    # re-running the same minute changes nothing
    before = _query("select device_id, time, measure_name, value from ml.predictions order by 1, 2, 3")
    pending = _query("select * from ml.arm_forecasts order by 1, 2, 3")
    run_again = load_dag("iot_forecast").test(logical_date=run.logical_date)
    assert run_again.state == "success"
    assert _query("select device_id, time, measure_name, value from ml.predictions order by 1, 2, 3") == before
    assert _query("select * from ml.arm_forecasts order by 1, 2, 3") == pending
    (skipped,) = _query("select skipped from ml.forecast_runs order by finished_at desc limit 1")[0]
    assert skipped["reasons"]["already forecast"] == DEVICES + 1


def test_rewards_settle_per_device_and_every_arm_is_scored(trained):
    """Replay 40 past issue minutes (actuals exist for them): each device's forecasts of a round
    are scored for every arm once that device's actuals exist; a re-run adds nothing."""
    from ml.forecasting import run_forecast

    now, _ = trained
    start = now - timedelta(minutes=200)
    for m in range(40):
        summary = run_forecast(start + timedelta(minutes=m))
        assert summary["devices_predicted"] >= DEVICES + 1      # + aq-lag; aq-sparse when it reported
    scores = _query("select arm, devices, reward_sum, abs_error_sum, points from ml.arm_scores"
                    " where issue_minute < %s", now - timedelta(minutes=100))
    assert {r[0] for r in scores} == CANDIDATES
    for arm, devices, reward_sum, abs_error, points in scores:
        assert devices >= DEVICES and points >= DEVICES * 15 and abs_error >= 0
        if arm == "persistence":
            assert reward_sum == pytest.approx(0.5 * devices)
    settled = _query("select reward, n_points from ml.model_selections where issue_minute < %s"
                     " and reward is not null", now - timedelta(minutes=100))
    assert len(settled) >= 40 - 15 and all(0 < r < 1 for r, _ in settled)
    run_forecast(start + timedelta(minutes=39))     # a re-run settles the last round's forecasts, once
    again = _query("select * from ml.arm_scores order by 1, 2, 3")
    run_forecast(start + timedelta(minutes=39))
    assert _query("select * from ml.arm_scores order by 1, 2, 3") == again


def test_a_lagging_device_settles_when_its_readings_arrive(trained):
    """aq-lag's readings stopped LAG minutes before the others. Its forecasts from the replayed
    rounds stay pending (the other devices' actuals exist, its own do not) and are scored into
    their own rounds once its readings arrive."""
    from ml.forecasting import run_forecast

    now, lag_rows = trained
    lag_round = now - timedelta(minutes=LAG + 5)
    run_forecast(lag_round)          # aq-lag's newest reading is LAG minutes old at `now`: it is fresh here
    pending = _query("select count(*) from ml.arm_forecasts where device_id = 'aq-lag' and issue_minute = %s",
                     lag_round)[0][0]
    assert pending == len(CANDIDATES)
    run_forecast(now - timedelta(minutes=2))                 # the other devices' actuals exist: aq-lag's not
    assert _query("select count(*) from ml.arm_forecasts where device_id = 'aq-lag' and issue_minute = %s",
                  lag_round)[0][0] == pending
    before = dict(_query("select arm, devices from ml.arm_scores where issue_minute = %s", lag_round))
    assert all(before[a] >= DEVICES for a in CANDIDATES)     # the others settled
    add_iaq_minutely([r for r in lag_rows if r[0] > now - timedelta(minutes=LAG)])
    summary = run_forecast(now - timedelta(minutes=1))
    assert summary["rewards_settled"] >= 1
    assert _query("select count(*) from ml.arm_forecasts where device_id = 'aq-lag' and issue_minute = %s",
                  lag_round)[0][0] == 0
    after = dict(_query("select arm, devices from ml.arm_scores where issue_minute = %s", lag_round))
    assert all(after[a] == before.get(a, 0) + 1 for a in CANDIDATES)


def test_forecast_accuracy_and_regret_fill_once_actuals_exist(trained):
    """agg.forecast_accuracy (dbt) after the replayed minutes: error per model, version, horizon,
    device and day; persistence scores exactly 1 against itself. agg.forecast_regret: the published
    forecasts against the best arm in hindsight and persistence. Re-running changes nothing."""
    from dbt_project.runner import build

    build(["forecast_accuracy", "forecast_regret"])
    # day last in the key: replayed minutes may span two days, and rows of equal (model, horizon,
    # device) would otherwise come back in physical order, which a rebuild changes
    sql = ("select model_name, horizon_minutes, device_id, predictions, mae, persistence_mae, mae_ratio, day"
           " from agg.forecast_accuracy order by 1, 2, 3, 8")
    rows = _query(sql)
    assert {r[1] for r in rows} == set(range(1, 16))
    assert all(r[3] > 0 and r[4] >= 0 for r in rows)
    persistence = [r for r in rows if r[0] == "persistence"]
    assert all(r[6] == pytest.approx(1.0) for r in persistence if r[5])
    regret_sql = ("select day, rounds, points, system_mae, persistence_mae, best_arm, best_arm_mae,"
                  " regret_vs_best_arm, regret_vs_persistence, arm_mae, choices from agg.forecast_regret order by day")
    regret = _query(regret_sql)
    assert regret and sum(r[1] for r in regret) >= 25
    for (_day, _rounds, points, system, pers, best, best_mae, vs_best, vs_pers, arm_mae, _choices) in regret:
        assert points > 0 and set(arm_mae) == CANDIDATES
        assert best_mae == pytest.approx(min(arm_mae.values()), abs=1e-4) and arm_mae[best] == min(arm_mae.values())
        assert vs_best == pytest.approx(system - best_mae) and vs_pers == pytest.approx(system - pers)
    build(["forecast_accuracy", "forecast_regret"])
    assert _query(sql) == rows
    assert _query(regret_sql) == regret
