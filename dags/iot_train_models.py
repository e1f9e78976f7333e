"""Weekly training of the IAQ forecast candidates (thin DAG: the logic is ml.training)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from iot_core.settings import get_settings
from orchestration.defaults import DEFAULT_ARGS

DOC = """
### iot_train_models

Fits every forecast candidate (persistence, ridge autoregression, LightGBM direct multi-horizon,
scikit-learn MLP) on the last `days` of `stage.iaq_minutely` (windows of 60 minutes -> the next 15,
split by time), logs parameters and MAE/RMSE per horizon (also as a ratio to persistence) to MLflow,
registers a version of each in the model `iaq_forecast`, moves each candidate's alias to it and
records the new versions as the bandit's arms in `ml.model_candidates`.

Schedule: Mondays 00:00 in `TRAINING_TIMEZONE` (seed 000 trained Mondays 00:00 UTC+11), and on
manual trigger. Params: `days`, `stride` (minutes between windows), `candidates`, `model_params`
(per-candidate overrides, e.g. `{"lightgbm": {"n_estimators": 50}}`). See docs/forecasting.md.
"""


@dag(
    dag_id="iot_train_models",
    schedule=CronTriggerTimetable("0 0 * * 1", timezone=get_settings().training_timezone),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ml", "forecast", "training"],
    doc_md=DOC,
    params={
        "days": Param(7, type="number", minimum=0.1, description="days of data to train on"),
        "stride": Param(1, type="integer", minimum=1, description="minutes between training windows"),
        "candidates": Param([], type="array", description="candidates to train (empty: all)"),
        "model_params": Param({}, type="object", description="per-candidate parameter overrides"),
    },
)
def iot_train_models():
    @task
    def train() -> list[dict]:
        from dataclasses import asdict

        from ml.training import train_candidates

        context = get_current_context()
        p = context["params"]
        end = context["dag_run"].run_after
        results = train_candidates(end=end, days=float(p["days"]), stride=int(p["stride"]),
                                   candidates=list(p["candidates"]) or None, params=dict(p["model_params"]))
        return [asdict(r) for r in results]

    train()


iot_train_models_dag = iot_train_models()
