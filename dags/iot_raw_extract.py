"""Extract MongoDB -> warehouse `raw` with dlt (thin DAG: the logic is dlt_pipelines)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from iot_core.settings import get_settings
from orchestration.assets import RAW_UPDATES_ALIAS
from orchestration.defaults import HOT_PATH_ARGS

DOC = """
### iot_raw_extract

Copies the documents that arrived in MongoDB since the last run (by `_ingested_at`, so late
readings with an old `ts` are included) into the warehouse schema `raw`, one table per
collection plus `<collection>__metrics` child tables, merged on the source `_id`.

* **extract** (the only task, so a run costs one task process): one dlt pipeline run; the
  collections are read in parallel, each with one range query (no count, no skip/limit),
  validated against the schema contract in the same pass and written with PostgreSQL COPY (dlt
  csv loader). Documents that break the contract go to `raw.quarantine` with the reason; the
  others load. The cursor lives in the warehouse with the data, so a rerun (or another worker)
  resumes exactly where the last committed load stopped and re-running an interval changes nothing.
  One load at a time across DAGs and the CLI (a PostgreSQL advisory lock taken by `load_raw`).
  It then announces the asset `raw.<table>` (through the alias `raw.updated_tables`) for each
  table that received rows, with the row count and dlt load ids in the event's extra, so the stage
  transform runs on new data only and validates exactly those loads. A run that found nothing
  new announces nothing.

Schedule: `EXTRACT_SCHEDULE` (default `@continuous`: the next run starts as soon as one ends, which
keeps MongoDB -> stage within seconds; a cron expression such as `* * * * *` trades freshness for
CPU); one run at a time. See docs/extract.md and docs/forecasting.md (freshness).
"""


@dag(
    dag_id="iot_raw_extract",
    schedule=get_settings().extract_schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=HOT_PATH_ARGS,
    tags=["extract", "dlt", "raw"],
    doc_md=DOC,
)
def iot_raw_extract():
    @task(outlets=[RAW_UPDATES_ALIAS])
    def extract(*, outlet_events=None) -> dict:
        from dlt_pipelines import load_raw
        from orchestration.asset_events import announce_raw_updates

        result = load_raw()  # waits while another DAG's load holds the extract lock
        result["announced"] = announce_raw_updates(result, outlet_events[RAW_UPDATES_ALIAS])
        return result

    extract()


iot_raw_extract_dag = iot_raw_extract()
