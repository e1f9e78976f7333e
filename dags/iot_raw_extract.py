"""Extract MongoDB -> warehouse `raw` with dlt (thin DAG: the logic is dlt_pipelines)."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag, task

from orchestration.assets import RAW_ASSETS
from orchestration.defaults import DEFAULT_ARGS

# Cron of the extract; every minute unless the deployment says otherwise.
SCHEDULE = os.environ.get("IOT_EXTRACT_SCHEDULE", "* * * * *")

DOC = """
### iot_raw_extract

Copies the documents that arrived in MongoDB since the last run (by `_ingested_at`, so late
readings with an old `ts` are included) into the warehouse schema `raw`, one table per
collection plus `<collection>__metrics` child tables, merged on the source `_id`.

* **extract**: one dlt pipeline run; the collections are read in parallel, each with one range
  query (no count, no skip/limit), validated against the schema contract in the same pass and
  written with PostgreSQL COPY (dlt csv loader). Documents that break the contract go to
  `raw.quarantine` with the reason; the others load. The cursor lives in the warehouse with the
  data, so a rerun (or another worker) resumes exactly where the last committed load stopped and
  re-running an interval changes nothing.
* **publish_<table>**: emits the Airflow asset `raw.<table>` when that table received rows, so
  downstream DAGs (stage transform) run on new data only; skipped otherwise.

Schedule: `IOT_EXTRACT_SCHEDULE` (cron, default every minute); one run at a time. See
docs/extract.md.
"""


@dag(
    dag_id="iot_raw_extract",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["extract", "dlt", "raw"],
    doc_md=DOC,
)
def iot_raw_extract():
    @task
    def extract() -> dict:
        from dlt_pipelines import load_raw

        return load_raw()

    @task
    def publish(result: dict, table: str) -> int:
        from airflow.sdk.exceptions import AirflowSkipException

        if table == "quarantine":
            rows = sum(result["quarantined"].values())
        else:
            rows = sum(n for t, n in result["loaded"].items() if t == table or t.startswith(f"{table}__"))
        if not rows:
            raise AirflowSkipException(f"no new rows in raw.{table}")
        return rows

    result = extract()
    for table, asset in RAW_ASSETS.items():
        publish.override(task_id=f"publish_{table}", outlets=[asset], retries=0)(result, table)


iot_raw_extract_dag = iot_raw_extract()
