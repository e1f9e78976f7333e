"""
### iot_stage_transform

Turns the newest raw increment into the `stage` layer (docs/warehouse.md): the hot path from
MongoDB to the forecast, so it is kept to what fresh readings need.

* **Schedule**: data-aware, whenever the extract announces new rows in any raw table (Airflow
  assets); events that arrive while a run is busy are batched into the next run.
* **build_stage**: one `dbt build` in the task's own process (dbt starts and parses once per run,
  not once per model) of the stage models that read the raw tables the triggering events name,
  and their stage descendants, each followed by its data tests (`source:raw.<table>*+,tag:stage`;
  all of `tag:stage` on a manual run). On success it announces `stage.all` and
  `stage.iaq_minutely` (the forecast waits on the latter).
* The Great Expectations checkpoint of the raw increment runs beside this DAG, not before it:
  `iot_raw_validate`, on the same assets (it records and quarantines, never halts, and the stage
  models' own checks keep bad rows out of stage), so a stage run never waits for it.
* The research `curated` layer is not on this path: `iot_curated_transform` builds it.
* **Idempotent**: incremental models merge on natural keys with a look-back window on
  `_ingested_at`; re-running changes nothing.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from orchestration.assets import ANY_RAW_UPDATE, IAQ_MINUTELY_ASSET, STAGE_ASSET
from orchestration.defaults import HOT_PATH_ARGS


@dag(
    dag_id="iot_stage_transform",
    schedule=ANY_RAW_UPDATE,
    catchup=False,
    max_active_runs=1,
    default_args=HOT_PATH_ARGS,
    tags=["transform", "dbt", "stage"],
    doc_md=__doc__,
)
def iot_stage_transform():
    # hot path (HOT_PATH_ARGS): pool `hot`, queued before batch tasks, Celery queue `hot`
    @task(outlets=[STAGE_ASSET, IAQ_MINUTELY_ASSET])
    def build_stage() -> dict:
        from orchestration.asset_events import stage_selection
        from orchestration.dbt_tasks import build_in_process, unbuilt_models

        selection = stage_selection(get_current_context().get("triggering_asset_events"), unbuilt_models("stage"))
        return build_in_process(selection, name="stage")

    build_stage()


iot_stage_transform_dag = iot_stage_transform()
