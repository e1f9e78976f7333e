"""The MLflow tracking server of local mode: PostgreSQL backend store, artifacts under ``.local/``."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from iot_core.connections import pg_url
from iot_core.settings import Settings


def artifacts_dir(settings: Settings) -> Path:
    return settings.local_dir / "mlflow" / "artifacts"


def base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.mlflow_port}"


def argv(settings: Settings) -> list[str]:
    """The server's command line: no secret (the backend store URI comes from :func:`env`)."""
    artifacts_dir(settings).mkdir(parents=True, exist_ok=True)
    return [
        sys.executable, "-m", "mlflow", "server",
        # artifacts are proxied by the server (mlflow-artifacts:/), so clients need no file access
        "--serve-artifacts", "--artifacts-destination", str(artifacts_dir(settings)),
        "--host", "127.0.0.1", "--port", str(settings.mlflow_port),
        # one worker: a 2-core machine shares its CPUs with Airflow and the databases
        "--workers", "1",
    ]


def env(settings: Settings) -> dict[str, str]:
    # the backend store URI holds the mlflow role's password: the environment, never argv (ps)
    backend = pg_url("mlflow", settings.mlflow_db, driver="postgresql+psycopg2", settings=settings)
    # MLflow's job runner (huey consumers for GenAI jobs) is not used by the platform: it would
    # cost extra processes and start-up time on a 2-core machine
    return {"MLFLOW_BACKEND_STORE_URI": backend, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def healthy(settings: Settings, timeout: float = 10) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url(settings)}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False
