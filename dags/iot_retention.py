"""
### iot_retention

Retention per warehouse layer (docs/warehouse.md): each layer keeps `RETENTION_<LAYER>_DAYS`
days (raw, stage, predictions, agg; empty = forever; predictions 30 days by default).

* **apply_retention**: with TimescaleDB, sets or updates the retention policy of every
  hypertable and continuous aggregate (and the compression of `ml.predictions`); TimescaleDB's
  background jobs then drop old chunks. Without it (local mode, CI) deletes the rows older than
  the cut-off, in batches. What it did goes to `ops.retention_runs`. Aggregates keep their
  periods after their source rows are gone.
* **record_job_health**: copies failed TimescaleDB job executions into
  `ops.timescaledb_job_errors` (also shown by `make status`); fails the task when a job failed
  in the last 24 hours, so the failure is visible in the UI and in `ops.task_failures`.

Re-running changes nothing: policies are replaced only when a setting changed, and rows older
than the cut-off are gone after the first run. Same code: `iot retention`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from orchestration.defaults import DEFAULT_ARGS


@dag(
    dag_id="iot_retention",
    schedule="15 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["warehouse", "retention", "ops"],
    doc_md=__doc__,
)
def iot_retention():
    @task
    def apply_retention() -> list[dict]:
        from warehouse.retention import apply_retention as apply
        from warehouse.retention import as_dicts

        return as_dicts(apply(progress=True))

    @task
    def record_job_health() -> str:
        from warehouse.job_health import record_job_errors

        health = record_job_errors()
        if not health.healthy:
            raise RuntimeError(f"TimescaleDB background jobs failing: {health.summary()}")
        return health.summary()

    apply_retention() >> record_job_health()


iot_retention_dag = iot_retention()
