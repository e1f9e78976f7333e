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
    s = settings
    api = f"http://127.0.0.1:{s.airflow_port}"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor forks `parallelism` workers: size it for the machine (2 cores here)
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
        # every task is a fresh process importing Airflow's task runner, dlt, dbt, mlflow...: with
        # PYTHONDONTWRITEBYTECODE inherited from the shell (some images set it) no .pyc is ever
        # written and each task compiled its imports from source again (7 s of a 19 s extract);
        # an empty value switches it off, so the first import writes the cache and later ones read it
        "PYTHONDONTWRITEBYTECODE": "",
        # DAG files import the project's packages
        "PYTHONPATH": str(PROJECT_ROOT),
    }


def write_admin_password(settings: Settings, airflow_home: Path) -> None:
    """The fixed development login of SimpleAuthManager, from .env (not a generated one)."""
    import json

    airflow_home.mkdir(parents=True, exist_ok=True)
    f = airflow_home / "simple_auth_manager_passwords.json"
    f.write_text(json.dumps({settings.airflow_admin_user: settings.airflow_admin_password.get_secret_value()}))
    f.chmod(0o600)
