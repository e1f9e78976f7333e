"""
### iot_stage_transform

Turns the newest raw increment into the `stage` layer and the research `curated` layer
(docs/warehouse.md).

* **Schedule**: data-aware, whenever the extract updates any raw table (Airflow assets), so fresh
  readings reach stage (and the forecast, which waits on `stage.iaq_minutely`) without a clock.
* **Tasks**: Great Expectations checkpoint over the raw increment (quarantines, never halts),
  then one task per dbt model of `tag:stage` and `tag:curated` with its tests right after it
  (astronomer-cosmos).
* **Idempotent**: incremental models merge on natural keys with a look-back window on
  `_ingested_at`; re-running changes nothing.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from dbt_project.cosmos_render import dbt_task_group
from orchestration.assets import IAQ_MINUTELY_ASSET, RAW_ASSETS, STAGE_ASSET
from orchestration.defaults import DEFAULT_ARGS

raw_updated = None
for asset in RAW_ASSETS.values():
    raw_updated = asset if raw_updated is None else raw_updated | asset


@dag(
    dag_id="iot_stage_transform",
    schedule=raw_updated,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["transform", "dbt", "stage"],
    doc_md=__doc__,
)
def iot_stage_transform():
    @task
    def validate_raw_increment() -> dict:
        from quality import validate_raw_increment as run_checkpoint

        return run_checkpoint()

    @task(outlets=[STAGE_ASSET, IAQ_MINUTELY_ASSET])
    def stage_done() -> None:
        """Marks stage as updated (consumers: forecast, agg)."""

    stage = dbt_task_group("stage", ["tag:stage"])
    curated = dbt_task_group("curated", ["tag:curated"])
    # the forecast waits on stage.iaq_minutely only: announce it before the research tables
    validate_raw_increment() >> stage >> [stage_done(), curated]


iot_stage_transform_dag = iot_stage_transform()
