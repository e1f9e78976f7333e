"""
### iot_export_csv

Seed 000's CSV exports of the air-quality readings, from the warehouse (`stage.stg_sensor_readings`)
into the export directory (`EXPORT_DIR`; `.local/exports` in local mode, a volume under Docker):

* **export_day**: `sensors/<yyyy-mm-dd>/raw.csv`, the run's day (the start of its daily interval,
  a calendar day in `DAY_TIMEZONE`);
* **export_latest**: `sensors/latest/<N>-days/raw.csv`, the `latest_days` days ending with that day
  (default `EXPORT_LATEST_DAYS`, 7).

One row per device and minute, one column per measure (`time,deviceId,iaq,temperature,...`), the
same CSV as the API's `/sensorsdata/export`. Files are replaced atomically, so re-running a day
rewrites the same file; readings that arrived late are picked up by clearing (re-running) the
day. Backfill past days with
`airflow backfill create --dag-id iot_export_csv --from-date ... --to-date ...`;
any other range: `iot export-csv --from D --to D`. See docs/exports.md.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from iot_core.settings import get_settings
from orchestration.defaults import DEFAULT_ARGS, skip_until_ready

_settings = get_settings()


def _run_day():
    """The calendar day this run exports (its data interval's start in DAY_TIMEZONE)."""
    from zoneinfo import ZoneInfo

    run = get_current_context()["dag_run"]
    start = run.data_interval_start or run.logical_date or run.run_after
    return start.astimezone(ZoneInfo(get_settings().day_timezone)).date()


@dag(
    dag_id="iot_export_csv",
    schedule=CronDataIntervalTimetable("@daily", timezone=_settings.day_timezone),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    tags=["export", "csv", "seed000"],
    doc_md=__doc__,
    params={"latest_days": Param(_settings.export_latest_days, type="integer", minimum=1,
                                 description="days in sensors/latest/<N>-days/raw.csv")},
)
def iot_export_csv():
    @task
    def export_day() -> dict:
        from exports.sensor_csv import WarehouseNotBuilt
        from exports.sensor_csv import export_day as write_day

        with skip_until_ready({WarehouseNotBuilt: "nothing to export before the first stage build"}):
            return write_day(_run_day()).as_dict()

    @task
    def export_latest() -> dict:
        from exports.sensor_csv import WarehouseNotBuilt
        from exports.sensor_csv import export_latest as write_latest

        days = int(get_current_context()["params"]["latest_days"])
        with skip_until_ready({WarehouseNotBuilt: "nothing to export before the first stage build"}):
            return write_latest(days, _run_day()).as_dict()

    export_day()
    export_latest()


iot_export_csv_dag = iot_export_csv()
