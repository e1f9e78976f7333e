"""Batch work yields the CPU to the hot path: the task process *and* its PostgreSQL backends.

Every batch task (``DEFAULT_ARGS``, orchestration/defaults.py) calls :func:`run_as_batch_work`
before it executes. Raising the task process's niceness alone left most of a dbt model task's
work at full priority: the SQL runs in a PostgreSQL backend, a process of the server's, and on a
2-core machine the backends of master, agg and curated models took the cores the stage build
needed (a stage build of 14 rows took 13 s with every DAG on, 3.5 s idle).

So a batch task also marks its database sessions (``application_name`` = ``iot-batch`` through
libpq's ``PGAPPNAME``, which psycopg, SQLAlchemy and dbt-postgres all honour) and, where the
server runs on this machine and this process may renice its processes (local mode runs both as
root), a daemon thread gives the backends of every marked session the same niceness, once a
second. Where that is impossible (the compose deployment: the database in another container) the
thread notes why once and stops; the task runs as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)

BACKGROUND_NICENESS = 10
BATCH_APPLICATION_NAME = "iot-batch"
RENICE_INTERVAL_S = 1.0
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")

_renicer: threading.Thread | None = None
_lock = threading.Lock()


def lower_cpu_priority() -> None:
    """Raise this process's niceness to ``BACKGROUND_NICENESS`` (never lowers it)."""
    current = os.nice(0)
    if current < BACKGROUND_NICENESS:
        os.nice(BACKGROUND_NICENESS - current)


def run_as_batch_work(context=None) -> None:
    """``on_execute_callback`` of every batch task: background CPU priority for this process and
    the PostgreSQL backends of its sessions (opened from now on, by any library using libpq)."""
    global _renicer
    lower_cpu_priority()
    os.environ["PGAPPNAME"] = BATCH_APPLICATION_NAME
    with _lock:
        if _renicer is None or not _renicer.is_alive():
            _renicer = threading.Thread(target=_renice_batch_backends, name="renice-batch-backends", daemon=True)
            _renicer.start()


def is_postgres_process(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "postgres"
    except OSError:
        return False


def renice_batch_backends_once(conn) -> list[int]:
    """Give every backend of a session marked ``iot-batch`` the background niceness; the pids
    changed. Raises ``PermissionError`` when this process may not renice them."""
    changed = []
    rows = conn.execute("select pid from pg_stat_activity where application_name = %s",
                        (BATCH_APPLICATION_NAME,)).fetchall()
    for (pid,) in rows:
        if not is_postgres_process(pid):
            continue
        try:
            if os.getpriority(os.PRIO_PROCESS, pid) < BACKGROUND_NICENESS:
                os.setpriority(os.PRIO_PROCESS, pid, BACKGROUND_NICENESS)
                changed.append(pid)
        except ProcessLookupError:  # the session ended meanwhile
            continue
    return changed


def _renice_batch_backends() -> None:
    from iot_core.connections import pg_connect
    from iot_core.settings import get_settings

    settings = get_settings()
    if settings.pg_host not in _LOCAL_HOSTS:
        log.info("PostgreSQL is on %s, not this machine: its backends keep their priority", settings.pg_host)
        return
    try:
        with pg_connect("transformer", autocommit=True, settings=settings) as conn:
            own_backend = conn.execute("select pg_backend_pid()").fetchone()[0]
            if not is_postgres_process(own_backend):
                log.info("PostgreSQL's processes are not visible here (another container): backends keep their priority")
                return
            while True:
                renice_batch_backends_once(conn)
                time.sleep(RENICE_INTERVAL_S)
    except PermissionError:
        log.info("not allowed to renice PostgreSQL's backends (not root, another user): they keep their priority")
    except Exception:  # noqa: BLE001 - a helper of the task, never a reason for it to fail
        log.warning("renicing batch backends stopped", exc_info=True)
