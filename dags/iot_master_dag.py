"""
### iot_master_dag

The whole chain for one interval: extract MongoDB -> raw (dlt), validate the raw increment
(Great Expectations; quarantines, never halts), dbt `stage`, `curated`, then the daily, weekly and
monthly `agg` models: each dbt model a task that builds it and runs its tests (astronomer-cosmos).

* **Schedule**: hourly; also the DAG to trigger by hand or in `dag.test()` for an end-to-end run.
* **Idempotent**: the extract merges on source keys, dbt models merge on natural keys and
  recompute whole periods; running it twice for the same interval changes nothing.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from orchestration.assets import AGG_ASSET, IAQ_MINUTELY_ASSET, STAGE_ASSET
from orchestration.dbt_tasks import dbt_task_group
from orchestration.defaults import batch_args


@dag(
    dag_id="iot_master_dag",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=batch_args(schedule_minutes=60),
    tags=["master", "extract", "transform", "dbt"],
    doc_md=__doc__,
)
def iot_master_dag():
    @task
    def extract() -> dict:
        from dlt_pipelines import load_raw

        # waits while the continuous iot_raw_extract is loading: they share one dlt pipeline
        return load_raw(collections=None, progress=False)

    @task
    def validate(extracted: dict) -> dict:
        from quality import validate_raw_increment

        if not extracted.get("load_ids"):  # nothing new was loaded: nothing to validate
            return {}
        return validate_raw_increment(load_ids=extracted["load_ids"])

    @task(outlets=[STAGE_ASSET, IAQ_MINUTELY_ASSET, AGG_ASSET])
    def done() -> None:
        """Marks stage and agg as updated."""

    # each model task runs `dbt build` on its model (the model, then its tests; a failing test
    # fails the task): half the tasks of separate test tasks
    stage = dbt_task_group("stage", ["tag:stage"])
    curated = dbt_task_group("curated", ["tag:curated"])
    agg_daily = dbt_task_group("agg_daily", ["tag:daily"])
    agg_weekly = dbt_task_group("agg_weekly", ["tag:weekly"])
    agg_monthly = dbt_task_group("agg_monthly", ["tag:monthly"])
    validate(extract()) >> stage >> [curated, agg_daily]
    agg_daily >> agg_weekly >> agg_monthly
    [curated, agg_monthly] >> done()


iot_master_dag_dag = iot_master_dag()
