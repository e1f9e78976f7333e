"""
### iot_curated_transform

Builds the research `curated` layer (dbt models tagged `curated`, docs/warehouse.md): only users
who agreed to share with research, only data from their consent date on. One task per model
(astronomer-cosmos) that runs `dbt build` on it: the model, then its tests (a failing test fails
the task). Not a task per test: every task is a process and a dbt start-up on a 2-core machine.

* **Schedule**: every 15 minutes. Research tables have no minute-level reader, so they are kept
  off the stage hot path (`iot_stage_transform`), where one cosmos task per model (a dbt start-up
  each) held every stage run for minutes; `iot_master_dag` builds them too.
* **Idempotent**: incremental models merge on natural keys; a re-run changes nothing.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from orchestration.dbt_tasks import dbt_task_group
from orchestration.defaults import batch_args


@dag(
    dag_id="iot_curated_transform",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=batch_args(schedule_minutes=15),
    tags=["transform", "dbt", "curated"],
    doc_md=__doc__,
)
def iot_curated_transform():
    dbt_task_group("curated", ["tag:curated"])


iot_curated_transform_dag = iot_curated_transform()
