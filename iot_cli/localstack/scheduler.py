"""``python -m iot_cli.localstack.scheduler``: Airflow's scheduler with the task libraries loaded.

The LocalExecutor forks its workers from the scheduler process and each worker forks the task, so
whatever the scheduler has imported is already in memory in every task process. Importing dbt
(with its PostgreSQL adapter) and dlt here once saves each stage build and each extract the
seconds of importing them again (measured: 4.7 s for both at load average 8), which on the
freshness path are paid on every run. Only libraries that start no thread when imported are
loaded: forking a process that runs threads is unsafe (numpy/pyarrow start native threads).
"""

from __future__ import annotations

import importlib
import logging
import sys

PRELOADED_MODULES = ("dbt.cli.main", "dbt.adapters.postgres", "dlt")

log = logging.getLogger(__name__)


def preload() -> None:
    for name in PRELOADED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # a task that needs it reports the error itself
            log.warning("could not preload %s", name, exc_info=True)


def main() -> None:
    preload()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "scheduler", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
