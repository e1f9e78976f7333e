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
    artifacts_dir(settings).mkdir(parents=True, exist_ok=True)
    backend = pg_url("mlflow", settings.mlflow_db, driver="postgresql+psycopg2", settings=settings)
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        # artifacts are proxied by the server (mlflow-artifacts:/), so clients need no file access
        "--serve-artifacts", "--artifacts-destination", str(artifacts_dir(settings)),
        "--host", "127.0.0.1", "--port", str(settings.mlflow_port),
        # one worker: a 2-core machine shares its CPUs with Airflow and the databases
        "--workers", "1",
    ]


def env() -> dict[str, str]:
    # MLflow's job runner (huey consumers for GenAI jobs) is not used by the platform: it would
    # cost extra processes and start-up time on a 2-core machine
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def healthy(settings: Settings, timeout: float = 10) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url(settings)}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False
