"""
### iot_raw_validate

The Great Expectations checkpoint over each raw increment (docs/warehouse.md, data quality):
results per expectation in `ops.data_quality_results`, rows that broke one in `ops.dq_quarantine`.
It never halts anything; the stage models' own checks keep bad rows out of stage
(`stage.stg_rejects`).

* **Schedule**: on the same raw assets as `iot_stage_transform`, as a DAG of its own so that the
  stage runs (the path to the forecast) never wait for it: events that arrive while it is busy are
  batched into its next run, whose task validates exactly the dlt loads those events name.
* Runs at a lower CPU priority than the hot path (niceness 10).
* **Idempotent**: results are keyed by (table, loads, expectation); re-validating overwrites them.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from orchestration.assets import ANY_RAW_UPDATE
from orchestration.defaults import DEFAULT_ARGS


@dag(
    dag_id="iot_raw_validate",
    schedule=ANY_RAW_UPDATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["quality", "great-expectations", "raw"],
    doc_md=__doc__,
)
def iot_raw_validate():
    @task
    def validate_raw_increment() -> dict:
        from orchestration.asset_events import load_ids_of
        from quality import validate_raw_increment as run_checkpoint

        load_ids = load_ids_of(get_current_context().get("triggering_asset_events"))
        # a manual run (no events) validates the newest load of each table
        return run_checkpoint(load_ids=load_ids or None)

    validate_raw_increment()


iot_raw_validate_dag = iot_raw_validate()
