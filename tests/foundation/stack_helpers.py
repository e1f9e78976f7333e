"""The throw-away local stack of the stack tests (lifecycle, outage, secrets).

It is started by the real CLI in a subprocess with its own ports (every port setting, Airflow's
internal ones included), its own state directory, none of the session servers' settings, and a
distinctive random value for every secret, so the secrets test can search for them and nothing
relies on the committed development values. The analyst's password holds a quote, a backslash
and a percent sign (psql, URL and supervisord quoting). The DAGs folder holds the raw extract
DAG (the outage test runs it) and whatever a test drops there.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from iot_cli.localstack.process import free_port
from iot_core.settings import PROJECT_ROOT, Settings

PORT_SETTINGS = ("PG_PORT", "MONGO_PORT", "AIRFLOW_PORT", "MLFLOW_PORT", "API_PORT", "DASHBOARD_PORT",
                 "AIRFLOW_WORKER_LOG_SERVER_PORT", "AIRFLOW_TRIGGER_LOG_SERVER_PORT", "AIRFLOW_SCHEDULER_HEALTH_PORT",
                 "REDIS_PORT")
STACK_DAGS = ("iot_raw_extract.py",)


def distinctive_secrets() -> dict[str, str]:
    from cryptography.fernet import Fernet

    def token() -> str:
        return secrets.token_hex(10)

    return {
        "PG_SUPERUSER_PASSWORD": f"pgsu-{token()}",
        "LOADER_PASSWORD": f"loader-{token()}",
        "TRANSFORMER_PASSWORD": f"transformer-{token()}",
        "ANALYST_PASSWORD": f"an'al\\y%st-{token()}",
        "API_PASSWORD": f"api-{token()}",
        "AIRFLOW_DB_PASSWORD": f"afdb-{token()}",
        "MLFLOW_DB_PASSWORD": f"mlflowdb-{token()}",
        "MONGO_PASSWORD": f"mongoapp-{token()}",
        "MONGO_ROOT_PASSWORD": f"mongoroot-{token()}",
        "AIRFLOW_ADMIN_PASSWORD": f"admin-{token()}",
        "AIRFLOW_JWT_SECRET": f"jwt-{secrets.token_hex(40)}",
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "PSEUDONYM_SECRET": f"pseudonym-{secrets.token_hex(16)}",
        "REDIS_PASSWORD": f"redis-{token()}",
    }


class LocalStack:
    def __init__(self, state_dir: Path, dags_dir: Path, settings: dict[str, str] | None = None):
        """``settings``: further platform settings of this stack (``AIRFLOW_EXECUTOR``, ...)."""
        self.state_dir = state_dir
        self.dags_dir = dags_dir
        ports = {name: free_port() for name in PORT_SETTINGS}
        self.secrets = distinctive_secrets()
        overrides = {**{k: str(v) for k, v in ports.items()}, **self.secrets,
                     "LOCAL_DIR": str(state_dir), "MONGO_DB": "iot_stack_test", **(settings or {})}
        # the session fixtures put their servers' settings (and Airflow's) in os.environ: drop them
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("AIRFLOW") and k not in overrides and k != "IOT_ENV_FILE"}
        self.env = {
            **base, **overrides,
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
        }
        self.settings = Settings(**{k.lower(): v for k, v in overrides.items()})

    def iot(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """``iot stack ARGS`` as a user runs it, in this stack's environment."""
        return self.cli("stack", *args, timeout=timeout)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "iot_cli.main", *args], env=self.env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=timeout)


def explain(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}"


