"""Batch work yields the CPU: its task process and the PostgreSQL backends of its sessions."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from orchestration.background import BACKGROUND_NICENESS, BATCH_APPLICATION_NAME

# a batch task in miniature: the callback, then a query that keeps its backend busy
BATCH_TASK = """
from orchestration.background import run_as_batch_work
from iot_core.connections import pg_connect
run_as_batch_work()
with pg_connect("transformer") as conn:
    print(conn.execute("select pg_backend_pid()").fetchone()[0], flush=True)
    conn.execute("select pg_sleep(20)")
"""


def _niceness(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def test_the_backends_of_a_batch_task_run_at_background_priority(services):
    """Before, only the task process was niced: the SQL of a dbt model, which is most of its
    work, ran at full priority in the server's backend and took the cores the stage build needed."""
    if os.geteuid() != 0:
        pytest.skip("renicing the server's processes needs root (as local mode runs)")
    import psycopg

    from iot_core.connections import pg_conninfo

    env = {k: v for k, v in os.environ.items() if k != "PGAPPNAME"}
    task = subprocess.Popen([sys.executable, "-c", BATCH_TASK], stdout=subprocess.PIPE, text=True,
                            env={**env, "PYTHONPATH": os.getcwd()})
    try:
        backend = int(task.stdout.readline())
        # named explicitly: a batch task run in this process before (dag.test()) left PGAPPNAME set
        with psycopg.connect(**pg_conninfo("superuser"), application_name="test-not-batch", autocommit=True) as conn:
            hot_backend = conn.execute("select pg_backend_pid()").fetchone()[0]
            deadline = time.monotonic() + 15
            while _niceness(backend) < BACKGROUND_NICENESS and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _niceness(backend) == BACKGROUND_NICENESS
            assert _niceness(task.pid) == BACKGROUND_NICENESS
            # a session not marked as batch work (the hot path, an analyst) keeps full priority
            assert _niceness(hot_backend) == 0
            name = conn.execute("select application_name from pg_stat_activity where pid = %s",
                                (backend,)).fetchone()[0]
            assert name == BATCH_APPLICATION_NAME
    finally:
        task.kill()
        task.wait()
