"""Default arguments and the failure callback every DAG shares; which work is hot and which is batch.

Every task is either on the **hot path** (MongoDB -> raw -> stage -> forecast -> alerts: what a
reading waits for) or **batch** work (dbt model tasks of master/agg/curated, training, validation,
exports, trips, retention). A DAG declares itself hot with ``default_args=HOT_PATH_ARGS``; every
other DAG uses ``DEFAULT_ARGS`` and is batch. The difference:

* pool: ``hot`` or ``batch`` (created by the stack and compose's airflow-init, sized from the
  settings by :mod:`orchestration.pools`): batch tasks never take more than ``AIRFLOW_BATCH_SLOTS``
  executor slots, so the rest of ``AIRFLOW_PARALLELISM`` is always free for the hot path;
* priority weight (absolute): when tasks wait for a slot, hot ones are queued first, then batch
  ones in order of how often their DAG runs (:func:`batch_args`);
* Celery queue: ``hot`` or ``batch``, each served by its own worker(s) (docs/operations.md);
* CPU: batch tasks and their PostgreSQL backends run at niceness 10 (orchestration/background.py).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from orchestration.background import run_as_batch_work

log = logging.getLogger(__name__)

OWNER = "data-platform"


FAILURE_INSERT = ("insert into ops.task_failures (dag_id, task_id, run_id, try_number, logical_date, exception,"
                  " context) values (%s, %s, %s, %s, %s, %s, %s)")


def record_failure(context) -> None:
    """on_failure_callback: record the failure in ``ops.task_failures`` (never raises)."""
    try:
        from iot_core.connections import pg_connect

        ti = context.get("task_instance") or context.get("ti")
        dag_run = context.get("dag_run")
        row = (
            getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or "?",
            getattr(ti, "task_id", None),
            getattr(dag_run, "run_id", None),
            getattr(ti, "try_number", None),
            context.get("logical_date"),
            repr(context.get("exception"))[:4000],
            json.dumps({"reason": str(context.get("reason", ""))}),
        )
        # the table is made by the warehouse init (warehouse/init/02_warehouse_schemas.sql)
        with pg_connect("transformer", autocommit=True) as conn:
            conn.execute(FAILURE_INSERT, row)
    except Exception:  # noqa: BLE001 - a callback must not mask the original failure
        log.exception("could not record the task failure")


HOT_POOL = HOT_QUEUE = "hot"
BATCH_POOL = BATCH_QUEUE = "batch"
HOT_PRIORITY = 100
BATCH_PRIORITY = 1

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": record_failure,
    # batch unless the DAG declares itself hot (HOT_PATH_ARGS)
    "pool": BATCH_POOL,
    "queue": BATCH_QUEUE,
    "priority_weight": BATCH_PRIORITY,
    "weight_rule": "absolute",  # not summed over downstream tasks: a long dbt chain stays batch
    # niceness 10 for the task process and its PostgreSQL backends (orchestration/background.py)
    "on_execute_callback": run_as_batch_work,
}



def batch_args(schedule_minutes: int) -> dict:
    """``DEFAULT_ARGS`` for a batch DAG that runs every ``schedule_minutes``: batch tasks waiting
    for a slot go in order of how soon their DAG runs again (earliest deadline first), every 15
    minutes (curated) before hourly (master) before daily and weekly work (agg, exports, training),
    all after the hot path. With one weight for all batch work a curated run queued behind a
    weekly training, a daily export and three agg DAGs, and took 3-15 minutes for 2 models."""
    weight = BATCH_PRIORITY + (2 if schedule_minutes <= 15 else 1 if schedule_minutes <= 60 else 0)
    return {**DEFAULT_ARGS, "priority_weight": weight}


HOT_PATH_ARGS = {**DEFAULT_ARGS, "pool": HOT_POOL, "queue": HOT_QUEUE, "priority_weight": HOT_PRIORITY,
                 "on_execute_callback": None}


class skip_until_ready:  # noqa: N801 - used as a context manager, named for what it does
    """Turn "not ready yet" into a skipped task with the reason, instead of a failure.

    On a fresh platform with every DAG switched on, the batch DAGs run before the first extract
    and stage build (and the forecast before the first training): those runs have nothing to do
    yet, which is not an error. ``reasons`` maps exception types to what to tell the user; a
    missing warehouse table (psycopg's UndefinedTable) is always such a case.
    """

    def __init__(self, reasons: dict[type[BaseException], str] | None = None):
        self.reasons = dict(reasons or {})

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        import psycopg
        from airflow.sdk.exceptions import AirflowSkipException

        for kind, hint in {**self.reasons, psycopg.errors.UndefinedTable: "the warehouse is not built yet: switch on "
                           "iot_raw_extract and iot_stage_transform (or run `make demo`)"}.items():
            if isinstance(exc, kind):
                raise AirflowSkipException(f"not ready: {exc} ({hint})") from exc
        return False
