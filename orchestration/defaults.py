"""Default arguments and the failure callback every DAG shares."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

log = logging.getLogger(__name__)

OWNER = "data-platform"

_FAILURES_DDL = """
create table if not exists ops.task_failures (
    id bigserial primary key,
    dag_id text not null,
    task_id text,
    run_id text,
    try_number int,
    logical_date timestamptz,
    exception text,
    context jsonb,
    failed_at timestamptz not null default now()
)"""


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
        with pg_connect("transformer", autocommit=True) as conn:
            conn.execute(_FAILURES_DDL)
            conn.execute(
                "insert into ops.task_failures (dag_id, task_id, run_id, try_number, logical_date, exception, context)"
                " values (%s, %s, %s, %s, %s, %s, %s)", row)
    except Exception:  # noqa: BLE001 - a callback must not mask the original failure
        log.exception("could not record the task failure")


DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": record_failure,
}
