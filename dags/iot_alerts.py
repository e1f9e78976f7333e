"""
### iot_alerts

Evaluates the alert rules (`alerts/rules.yml`, or the file `ALERT_RULES_FILE` names) after every
stage build and every forecast cycle, and at least once a minute (silent devices produce no stage
update, so the no-data rule needs the clock). See docs/alerts.md.

* **evaluate_and_deliver**: one pass of every rule over what reached stage / `ml.predictions`
  since its last pass: one state machine per rule x device (pending -> firing -> resolved),
  alerts in `ops.alert_events`, each state change queued once in the outbox
  `ops.alert_notifications` in the same transaction; then the due notifications are posted to
  the receivers of `ALERT_WEBHOOKS` (Alertmanager-compatible JSON; retries with back-off across
  runs, at most 30 s of delivery per run so a dead receiver never holds the hot path).
* **Schedule**: the assets `stage.all` and `ml.predictions` (data-aware), or every minute.
* **Idempotent**: the pass runs as of the run's time; a re-run finds the rules' progress past its
  data and changes nothing. A rule file that does not validate fails the run at once with every
  problem listed (retrying cannot mend it); before the first stage build the run is skipped.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from orchestration.assets import PREDICTIONS_ASSET, STAGE_ASSET
from orchestration.defaults import HOT_PATH_ARGS


@dag(
    dag_id="iot_alerts",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("* * * * *", timezone="UTC"),
                                 assets=STAGE_ASSET | PREDICTIONS_ASSET),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=HOT_PATH_ARGS,
    tags=["alerts", "hot-path"],
    doc_md=__doc__,
)
def iot_alerts():
    @task
    def evaluate_and_deliver() -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from alerts.delivery import deliver_due
        from alerts.evaluate import evaluate
        from alerts.measures import ContractUnavailable
        from alerts.rules import RuleError
        from orchestration.asset_events import newest_event_time

        context = get_current_context()
        run = context["dag_run"]
        # asset-triggered: as of the newest update that triggered it; cron: the run's minute
        times = [newest_event_time(context.get("triggering_asset_events")), run.logical_date, run.run_after]
        as_of = max(t for t in times if t is not None)
        try:
            summary = evaluate(as_of)
        except ContractUnavailable as e:   # a fresh platform before its first stage build: nothing to judge yet
            raise AirflowSkipException(str(e)) from e
        except RuleError as e:
            raise AirflowFailException(str(e)) from e
        delivery = deliver_due(max_seconds=30)
        return {"as_of": as_of.isoformat(), "rules": summary["rules"], "observations": summary["observations"],
                "transitions": summary["transitions"], "notifications_queued": summary["notifications"],
                "delivery": delivery, "seconds": summary["seconds"]}

    evaluate_and_deliver()


iot_alerts_dag = iot_alerts()
