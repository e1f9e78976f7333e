"""Minute-level IAQ forecast (thin DAG: the logic is ml.forecasting)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from orchestration.assets import IAQ_MINUTELY_ASSET, PREDICTIONS_ASSET
from orchestration.defaults import HOT_PATH_ARGS, skip_until_ready

DOC = """
### iot_forecast

Every minute, and whenever `stage.iaq_minutely` is updated (asset), one forecast cycle: scores
every arm's earlier forecasts of each device whose actuals have arrived (`ml.arm_scores`),
chooses a model (sliding-window UCB over the current candidates; persistence unless another
beats it with confidence; the choice holds the MLflow alias `champion`), and writes 15 rows per
active device into `ml.predictions` (`time` = latest reading + h, `measure_name` `iaq~h`); every
arm's forecast is kept in `ml.arm_forecasts` until it is scored. Devices with stale or gappy
data (sensors reporting every 5-15 minutes are forecast) are skipped with the reason in
`ml.forecast_runs`. Re-running a minute changes nothing. Loaded models are cached per worker
process and on disk by version. See docs/forecasting.md.
"""


@dag(
    dag_id="iot_forecast",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("* * * * *", timezone="UTC"),
                                 assets=[IAQ_MINUTELY_ASSET]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=HOT_PATH_ARGS,
    tags=["ml", "forecast"],
    doc_md=DOC,
    params={"staleness_minutes": Param(10, type="integer", minimum=0,
                                       description="skip devices whose latest reading is older")},
)
def iot_forecast():
    @task(outlets=[PREDICTIONS_ASSET])
    def forecast() -> dict:
        from ml.forecasting import NoTrainedModels, run_forecast
        from orchestration.asset_events import newest_event_time

        context = get_current_context()
        run = context["dag_run"]
        # asset-triggered: the time of the newest stage update (its minute is in the windows);
        # cron: the run's minute
        issue_time = newest_event_time(context.get("triggering_asset_events")) or run.logical_date or run.run_after
        with skip_until_ready({NoTrainedModels: "trigger iot_train_models once (or `make demo`); it then runs weekly"}):
            summary = run_forecast(issue_time, staleness_minutes=int(context["params"]["staleness_minutes"]))
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in summary.items()}

    forecast()


iot_forecast_dag = iot_forecast()
