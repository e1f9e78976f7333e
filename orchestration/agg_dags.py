"""One factory for the three agg DAGs (daily, weekly, monthly): they differ only in cadence."""

from __future__ import annotations

from dataclasses import dataclass

import pendulum
from airflow.sdk import dag, task

from orchestration.assets import AGG_ASSET
from orchestration.dbt_tasks import dbt_task_group
from orchestration.defaults import DEFAULT_ARGS


@dataclass(frozen=True)
class Cadence:
    grain: str        # dbt tag of the models and suffix of the DAG id: daily, weekly, monthly
    cron: str         # in the Airflow timezone, after each period has ended
    period_end: str   # how the docs say when the cron fires


CADENCES = {
    "daily": Cadence("daily", "30 0 * * *", "after each day has ended (00:30)"),
    "weekly": Cadence("weekly", "45 0 * * 1", "after each ISO week has ended (Monday 00:45)"),
    "monthly": Cadence("monthly", "0 1 1 * *", "after each month has ended (the 1st, 01:00)"),
}


def _doc(c: Cadence) -> str:
    return f"""
### iot_agg_transform_{c.grain}

Builds the {c.grain} aggregates of the `agg` schema (dbt models tagged `{c.grain}`, see
docs/warehouse.md): one task per model (astronomer-cosmos) that runs `dbt build` on it, the model
then its tests.

* **Schedule**: cron `{c.cron}` in the Airflow timezone, i.e. {c.period_end}, so the closing
  run of a period sees all of it. Every run recomputes *whole* periods that received new data
  (delete+insert on the period key), so partial periods are never frozen and late data is folded
  in; `iot_master_dag` also runs these models after each stage update.
* **Idempotent**: a re-run for the same interval changes nothing.
"""


def agg_transform_dag(grain: str):
    """The DAG ``iot_agg_transform_<grain>`` (grain: daily, weekly or monthly)."""
    c = CADENCES[grain]

    @dag(
        dag_id=f"iot_agg_transform_{c.grain}",
        schedule=c.cron,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["transform", "dbt", "agg", c.grain],
        doc_md=_doc(c),
    )
    def agg_transform():
        @task(outlets=[AGG_ASSET])
        def agg_done() -> None:
            """Marks agg as updated."""

        dbt_task_group(f"agg_{c.grain}", [f"tag:{c.grain}"]) >> agg_done()

    return agg_transform()
