"""``python -m iot_cli.localstack.scheduler``: Airflow's scheduler with the task libraries loaded.

The LocalExecutor forks its workers from the scheduler process and each worker forks the task, so
whatever the scheduler has imported is already in memory in every task process. Importing dbt
(with its PostgreSQL adapter), dlt, pandas and MLflow's pyfunc here once saves each stage build,
extract and forecast the seconds of importing them again (4.7 s for dbt and dlt, 3.8 s for
MLflow at load average 8-12), which on the freshness path are paid on every run.

Forking a process that runs threads is unsafe, so the preload must leave the scheduler with one
thread: numpy's BLAS and pyarrow's jemalloc would start theirs on import, which the environment
below prevents while the libraries load (it is restored afterwards, so tasks see their own).
Tasks inherit a one-thread BLAS, which the forecasting code asks for anyway (ml/models.py).
Only third-party libraries are preloaded: the project's own modules would be frozen at their
state when the scheduler started. The local stack and the Docker Compose scheduler both start it.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

PRELOADED_MODULES = ("dbt.cli.main", "dbt.adapters.postgres", "dlt", "pandas", "mlflow.pyfunc")
# while preloading: no BLAS / OpenMP thread pools, no jemalloc background thread (pyarrow)
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "JE_ARROW_MALLOC_CONF": "background_thread:false"}

log = logging.getLogger(__name__)


def thread_count() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1


def preload(modules=PRELOADED_MODULES) -> list[str]:
    """Import ``modules`` in this process without starting threads; returns the ones loaded."""
    added = {k: v for k, v in SINGLE_THREAD_ENV.items() if k not in os.environ}
    os.environ.update(added)
    loaded = []
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:  # a task that needs it reports the error itself
                log.warning("could not preload %s", name, exc_info=True)
                continue
            loaded.append(name)
            if thread_count() > 1:
                log.warning("preloading %s started a thread; not preloading further modules", name)
                break
    finally:
        for k in added:
            os.environ.pop(k, None)
    return loaded


def main() -> None:
    preload()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "scheduler", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
