"""Airflow's configuration for local mode and tests, derived from the platform settings.

Airflow reads its configuration from ``AIRFLOW__SECTION__KEY`` environment variables when it
is first imported, so callers set these before importing ``airflow``.
"""

from __future__ import annotations

from pathlib import Path

from iot_core.connections import pg_url
from iot_core.settings import PROJECT_ROOT, Settings

DAGS_FOLDER = PROJECT_ROOT / "dags"


def airflow_env(settings: Settings, airflow_home: Path) -> dict[str, str]:
    from iot_cli.localstack import celery_mode

    s = settings
    api = f"http://127.0.0.1:{s.airflow_port}"
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # AIRFLOW_EXECUTOR: local (LocalExecutor) or celery (Redis + workers: celery_mode.py)
        "AIRFLOW__CORE__EXECUTOR": celery_mode.executor_name(s),
        # LocalExecutor forks `parallelism` workers: size it for the machine (2 cores here); the
        # pools hot and batch (orchestration/pools.py) share them out
        "AIRFLOW__CORE__PARALLELISM": str(s.airflow_parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(s.airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(s.airflow_dags_paused_at_creation),
        "AIRFLOW__CORE__FERNET_KEY": s.airflow_fernet_key.get_secret_value(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url("airflow", s.airflow_db, settings=s),
        # psycopg 3 serves the async engine too (no asyncpg needed)
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": pg_url("airflow", s.airflow_db, settings=s),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__PORT": str(s.airflow_port),
        # local mode serves this machine only (the dev login is public); override with the env var
        "AIRFLOW__API__HOST": "127.0.0.1",
        # one API worker process: sized for a 2-core machine
        "AIRFLOW__API__WORKERS": "1",
        # offline machines: Cosmos would otherwise try to send usage telemetry on every task
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": s.airflow_jwt_secret.get_secret_value(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "simple_auth_manager_passwords.json"),
        # re-parse each DAG file at most once a minute: keeps idle CPU low on 2 cores
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        # look for new DAG files every 30 s (default 300): a dropped-in DAG shows up quickly
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        # the internal servers take their ports from .env, so two stacks on one host do not clash
        # (local mode binds the log servers to 127.0.0.1: iot_cli/localstack/launch.py)
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.airflow_worker_log_server_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s.airflow_trigger_log_server_port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        # the api-server fetches a running task's log from http://<hostname>:<log server port>: the
        # log servers listen on 127.0.0.1 only, so the components name themselves by that address
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "iot_cli.localstack.airflow_env.loopback_hostname",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(s.airflow_scheduler_health_port),
        # every task is a fresh process importing Airflow's task runner, dlt, dbt, mlflow...: with
        # PYTHONDONTWRITEBYTECODE inherited from the shell (some images set it) no .pyc is ever
        # written and each task compiled its imports from source again (7 s of a 19 s extract);
        # an empty value switches it off, so the first import writes the cache and later ones read it
        "PYTHONDONTWRITEBYTECODE": "",
        # DAG files import the project's packages
        "PYTHONPATH": str(PROJECT_ROOT),
        # the scheduler heartbeats every 5 s; at load average 10+ on 2 cores a beat can come 30 s
        # late, and `make status` then called working components unhealthy right after `make up`
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "90",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "90",
        "AIRFLOW__DAG_PROCESSOR__HEALTH_CHECK_THRESHOLD": "90",
    }
    if celery_mode.enabled(s):
        env.update(celery_mode.airflow_celery_env(s))
    return env


def loopback_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in local mode: every component runs on this machine."""
    return "127.0.0.1"


def write_admin_password(settings: Settings, airflow_home: Path) -> None:
    """The fixed development login of SimpleAuthManager, from .env (not a generated one)."""
    import json

    airflow_home.mkdir(parents=True, exist_ok=True)
    f = airflow_home / "simple_auth_manager_passwords.json"
    f.write_text(json.dumps({settings.airflow_admin_user: settings.airflow_admin_password.get_secret_value()}))
    f.chmod(0o600)
