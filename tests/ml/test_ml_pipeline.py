"""Training and forecasting end to end: real PostgreSQL, the MLflow SQL backend, Airflow dag.test()."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ml_testdata import reset_iaq_minutely, reset_ml_tables, synthetic_iaq

from iot_core.connections import pg_connect

DEVICES = 3
SMALL = {"lightgbm": {"n_estimators": 20}, "mlp": {"max_iter": 30, "hidden_layer_sizes": [32]}}


def _query(sql, *args):
    with pg_connect("transformer") as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


@pytest.fixture(scope="module")
def trained(platform, mlflow_backend, load_dag):
    """Two days of synthetic IAQ for 3 devices ending now, plus one device with too little data,
    and the candidates trained through the real DAG."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = synthetic_iaq(DEVICES, 2 * 1440, end=now)
    rows += [(now - timedelta(minutes=i), "aq-short", 80.0, False) for i in range(30)]
    rows += [(now - timedelta(minutes=i), "aq-stale", 90.0, False) for i in range(20, 100)]  # silent 20 min
    reset_iaq_minutely(rows)
    reset_ml_tables()
    run = load_dag("iot_train_models").test(run_conf={"days": 3, "stride": 3, "model_params": SMALL})
    assert run.state == "success"
    return now


def test_training_registers_every_candidate_with_an_alias(trained):
    from mlflow import MlflowClient

    from ml import registry

    candidates = dict(_query("select candidate, model_version from ml.model_candidates where is_current"))
    assert set(candidates) == {"persistence", "ridge", "lightgbm", "mlp"}
    client = MlflowClient()
    for name, version in candidates.items():
        mv = client.get_model_version_by_alias(registry.REGISTERED_MODEL, name)
        assert str(mv.version) == version
        run = client.get_run(mv.run_id)
        assert {"mae", "rmse", "mae_ratio", "mae_h01", "rmse_h15", "mae_ratio_h15"} <= set(run.data.metrics)
        assert run.data.params["candidate"] == name
    ratios = dict(_query("select candidate, mae_ratio from ml.model_candidates where is_current"))
    assert ratios["persistence"] == pytest.approx(1.0)
    assert ratios["ridge"] < 0.8          # the synthetic series is forecastable


def test_model_signature_is_60_to_15(trained):
    import mlflow

    from ml import registry

    info = mlflow.models.get_model_info(f"models:/{registry.REGISTERED_MODEL}@ridge")
    assert info.signature.inputs.inputs[0].shape == (-1, 60)
    assert info.signature.outputs.inputs[0].shape == (-1, 15)


def test_forecast_dag_writes_15_future_rows_per_device(trained, load_dag):
    run = load_dag("iot_forecast").test()
    assert run.state == "success"
    rows = _query("select device_id, count(*), min(time), max(time), min(issued_at),"
                  " array_agg(distinct measure_name) from ml.predictions group by device_id")
    by_device = {r[0]: r for r in rows}
    assert set(by_device) == {f"aq-{d:03d}" for d in range(DEVICES)}   # aq-short, aq-stale skipped
    for _device, count, first, last, issued, names in rows:
        assert count == 15
        assert first == issued + timedelta(minutes=1) and last == issued + timedelta(minutes=15)
        assert last > trained                      # predictions lie in the future
        assert set(names) == {f"iaq~{h}" for h in range(1, 16)}
    (skipped,) = _query("select skipped from ml.forecast_runs order by finished_at desc limit 1")[0]
    assert skipped["devices"]["aq-short"].startswith("not enough recent data:")
    assert skipped["devices"]["aq-stale"].startswith("stale:")

    # the chosen model holds the champion alias; the best validation model is tried first
    from mlflow import MlflowClient

    from ml import registry

    arm, version = _query("select arm, model_version from ml.model_selections")[0]
    best = _query("select candidate from ml.model_candidates where is_current order by val_mae limit 1")[0][0]
    assert arm == best
    assert str(MlflowClient().get_model_version_by_alias(registry.REGISTERED_MODEL, "champion").version) == version

    # re-running the same minute changes nothing
    before = _query("select device_id, time, measure_name, value from ml.predictions order by 1, 2, 3")
    run_again = load_dag("iot_forecast").test(logical_date=run.logical_date)
    assert run_again.state == "success"
    assert _query("select device_id, time, measure_name, value from ml.predictions order by 1, 2, 3") == before
    (skipped,) = _query("select skipped from ml.forecast_runs order by finished_at desc limit 1")[0]
    assert skipped["reasons"]["already forecast"] == DEVICES


def test_rewards_settle_and_bandit_tries_every_arm_once_actuals_exist(trained):
    """Replay 40 past issue minutes (actuals exist for them): each arm is tried, rewards arrive
    15 minutes after each choice and are stored with the choice."""
    from ml.forecasting import run_forecast

    start = trained - timedelta(minutes=200)
    for m in range(40):
        summary = run_forecast(start + timedelta(minutes=m))
        assert summary["devices_predicted"] == DEVICES
    rows = _query("select arm, reward, model_mae, persistence_mae, n_points from ml.model_selections"
                  " where issue_minute < %s order by issue_minute", trained - timedelta(minutes=100))
    assert {r[0] for r in rows} == {"persistence", "ridge", "lightgbm", "mlp"}
    settled = [r for r in rows if r[1] is not None]
    assert len(settled) >= 40 - 15
    for arm, reward, model_mae, persistence_mae, n_points in settled:
        assert 0 < reward < 1 and n_points == DEVICES * 15
        if arm == "persistence":
            assert reward == pytest.approx(0.5) and model_mae == pytest.approx(persistence_mae)


def test_forecast_accuracy_fills_once_actuals_exist(trained):
    """agg.forecast_accuracy (dbt) after the replayed minutes: error per model, version, horizon,
    device and day; persistence scores exactly 1 against itself; re-running changes nothing."""
    from dbt_project.runner import build

    build(["forecast_accuracy"])
    # day last in the key: replayed minutes may span two days, and rows of equal (model, horizon,
    # device) would otherwise come back in physical order, which a rebuild changes
    sql = ("select model_name, horizon_minutes, device_id, predictions, mae, persistence_mae, mae_ratio, day"
           " from agg.forecast_accuracy order by 1, 2, 3, 8")
    rows = _query(sql)
    assert {r[0] for r in rows} == {"persistence", "ridge", "lightgbm", "mlp"}
    assert {r[1] for r in rows} == set(range(1, 16))
    assert all(r[3] > 0 and r[4] >= 0 for r in rows)
    persistence = [r for r in rows if r[0] == "persistence"]
    assert all(r[6] == pytest.approx(1.0) for r in persistence if r[5])
    build(["forecast_accuracy"])
    assert _query(sql) == rows
