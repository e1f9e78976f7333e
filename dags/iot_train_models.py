"""Weekly training of the IAQ forecast candidates (thin DAG: the logic is ml.training)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from iot_core.settings import get_settings
from orchestration.defaults import DEFAULT_ARGS, skip_until_ready

DOC = """
### iot_train_models

Fits every forecast candidate (persistence, damped trend, a linear autoregression with Huber loss,
LightGBM direct multi-horizon with L1 loss, a scikit-learn MLP) on the last `days` of
`stage.iaq_minutely` (windows of 60 minutes -> the next 15, issued at readings, inputs only from
earlier readings). Each candidate's parameters are chosen by walk-forward validation over the
span's last weekdays (each fitted on the days before, scored on the day); it is then refitted on
the whole span, logged to MLflow (parameters, validation MAE per horizon and as a ratio to
persistence), registered as a version of `iaq_forecast` with its alias moved, and recorded as an
arm of the selection in `ml.model_candidates`.

Schedule: Mondays 00:00 in `TRAINING_TIMEZONE` (seed 000 trained Mondays 00:00 UTC+11), and on
manual trigger. Params: `days`, `stride` (every n-th window), `candidates`, `model_params`
(overrides of every parameter set tried, e.g. `{"lightgbm": {"n_estimators": 50}}`). The same
training is replayed over any series by `iot backtest`. See docs/forecasting.md.
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
        "days": Param(get_settings().forecast_training_days, type="number", minimum=0.1,
                      description="days of data to train on (default FORECAST_TRAINING_DAYS)"),
        "stride": Param(1, type="integer", minimum=1, description="minutes between training windows"),
        "candidates": Param([], type="array", description="candidates to train (empty: all)"),
        "model_params": Param({}, type="object", description="per-candidate parameter overrides"),
    },
)
def iot_train_models():
    @task
    def train() -> list[dict]:
        from dataclasses import asdict

        from ml.training import NotEnoughData, train_candidates

        context = get_current_context()
        p = context["params"]
        end = context["dag_run"].run_after
        with skip_until_ready({NotEnoughData: "let the simulator or devices stream longer, or lower the param days"}):
            results = train_candidates(end=end, days=float(p["days"]), stride=int(p["stride"]),
                                       candidates=list(p["candidates"]) or None, params=dict(p["model_params"]))
        return [asdict(r) for r in results]

    train()


iot_train_models_dag = iot_train_models()
