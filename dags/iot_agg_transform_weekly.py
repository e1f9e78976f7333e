"""
### iot_agg_transform_weekly

Builds the weekly aggregates of the `agg` schema (dbt models tagged `weekly`, see
docs/warehouse.md): one task per model with its tests right after it (astronomer-cosmos).

* **Schedule**: cron `45 0 * * 1` in the Airflow timezone, i.e. after each ISO week (Monday 00:45) has ended, so the
  closing run of a period sees all of it. Every run recomputes *whole* periods that received new
  data (delete+insert on the period key), so partial periods are never frozen and late data is
  folded in; `iot_master_dag` also runs these models after each stage update.
* **Idempotent**: a re-run for the same interval changes nothing.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from dbt_project.cosmos_render import dbt_task_group
from orchestration.assets import AGG_ASSET
from orchestration.defaults import DEFAULT_ARGS


@dag(
    dag_id="iot_agg_transform_weekly",
    schedule="45 0 * * 1",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["transform", "dbt", "agg", "weekly"],
    doc_md=__doc__,
)
def iot_agg_transform_weekly():
    @task(outlets=[AGG_ASSET])
    def agg_done() -> None:
        """Marks agg as updated."""

    dbt_task_group("agg_weekly", ["tag:weekly"]) >> agg_done()


iot_agg_transform_weekly_dag = iot_agg_transform_weekly()
