"""Airflow 3 in local mode: metadata migration, pools, the components and their health.

The components (api-server, scheduler, dag-processor, triggerer) run as separate background
processes with the LocalExecutor, exactly like the containers of ``docker-compose.yml``; with
``AIRFLOW_EXECUTOR=celery`` a Celery worker for the ``hot`` and one for the ``batch`` queue join
them (:mod:`iot_cli.localstack.celery_mode`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from iot_cli.localstack import celery_mode
from iot_cli.localstack.airflow_env import airflow_env, write_admin_password
from iot_cli.localstack.process import ServiceError
from iot_core.settings import PROJECT_ROOT, Settings

# service name -> `airflow` sub-command; the api-server also serves the UI and the execution API
COMPONENTS: dict[str, list[str]] = {
    "airflow-api-server": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
}


def components(settings: Settings) -> list[str]:
    """The Airflow services of this stack: the four components, and the workers in celery mode."""
    return [*COMPONENTS, *(celery_mode.WORKER_SERVICES if celery_mode.enabled(settings) else ())]


# the key of each component in the answer of GET /api/v2/monitor/health
HEALTH_KEYS = {
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag_processor",
    "airflow-triggerer": "triggerer",
}


def home(settings: Settings) -> Path:
    return settings.local_dir / "airflow"


def base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.airflow_port}"


def component_env(settings: Settings) -> dict[str, str]:
    """Airflow's configuration derived from the settings; ``AIRFLOW__*`` variables already in
    the environment win, so a user can change any Airflow option without editing code."""
    env = airflow_env(settings, home(settings))
    env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW__")})
    # tasks call the venv's tools (dbt, dlt) by name
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def subcommand(component: str, settings: Settings) -> list[str]:
    """The ``airflow`` arguments of a component or worker."""
    if component in celery_mode.WORKER_SERVICES:
        return celery_mode.worker_argv(component, settings)
    return COMPONENTS[component]


def prepare_dbt_manifest(log_file: Path, timeout: float = 600) -> None:
    """dbt's manifest, which the Cosmos DAGs render from, written before the DAG processor starts
    (orchestration.dbt_tasks.ensure_manifest; a DAG file may not take that long to import)."""
    with log_file.open("a") as log:
        r = subprocess.run([sys.executable, "-m", "orchestration.dbt_tasks"], stdout=log, stderr=subprocess.STDOUT,
                           timeout=timeout)
    if r.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise ServiceError(f"dbt parse failed (log: {log_file}):\n{tail}")


def migrate(settings: Settings, log_file: Path, timeout: float = 600) -> None:
    """``airflow db migrate`` (idempotent), the pools ``hot`` and ``batch`` (orchestration/pools.py)
    and the fixed development login from ``.env``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        try:
            r = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], stdout=log,
                               stderr=subprocess.STDOUT, env={**os.environ, **component_env(settings)},
                               timeout=timeout, cwd=PROJECT_ROOT)
        except subprocess.TimeoutExpired as e:
            raise ServiceError(f"airflow db migrate took longer than {timeout:.0f}s (log: {log_file})") from e
        if r.returncode == 0:
            r = subprocess.run([sys.executable, "-m", "orchestration.pools"], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **component_env(settings)}, timeout=timeout, cwd=PROJECT_ROOT)
    if r.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise ServiceError(f"airflow db migrate or the pools failed (log: {log_file}):\n{tail}")
    write_admin_password(settings, home(settings))


def health(settings: Settings, timeout: float = 10) -> dict | None:
    """The answer of ``GET /api/v2/monitor/health`` (no login needed), or None when unreachable."""
    try:
        with urllib.request.urlopen(f"{base_url(settings)}/api/v2/monitor/health", timeout=timeout) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def component_healthy(component: str, health_answer: dict | None) -> bool:
    """The api-server is healthy when it answers; the others when their heartbeat is recent."""
    if health_answer is None:
        return False
    if component == "airflow-api-server":
        return health_answer.get("metadatabase", {}).get("status") == "healthy"
    entry = health_answer.get(HEALTH_KEYS[component]) or {}
    return entry.get("status") == "healthy"


def access_token(settings: Settings, timeout: float = 60) -> str:
    """A JWT for the REST API from the SimpleAuthManager login (``POST /auth/token``)."""
    body = json.dumps({"username": settings.airflow_admin_user,
                       "password": settings.airflow_admin_password.get_secret_value()}).encode()
    req = urllib.request.Request(f"{base_url(settings)}/auth/token", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)["access_token"]


def api_request(settings: Settings, method: str, path: str, body: dict | None = None, token: str | None = None,
                timeout: float = 60) -> dict:
    """``<method> /api/v2/<path>`` with a bearer token (fetched when not given); the JSON answer."""
    token = token or access_token(settings)
    req = urllib.request.Request(
        f"{base_url(settings)}/api/v2/{path.lstrip('/')}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise ServiceError(f"Airflow API {method} {path}: HTTP {e.code} {e.read()[:500]!r}") from e


def api_get(settings: Settings, path: str, token: str | None = None, timeout: float = 60) -> dict:
    return api_request(settings, "GET", path, token=token, timeout=timeout)


def trigger_and_wait(settings: Settings, dag_id: str, timeout: float = 300, unpause: bool = True) -> dict:
    """Trigger a run of ``dag_id`` now (switching the DAG on first) and wait until it finishes."""
    import time

    token = access_token(settings)
    if unpause:
        api_request(settings, "PATCH", f"dags/{dag_id}", {"is_paused": False}, token=token)
    run = api_request(settings, "POST", f"dags/{dag_id}/dagRuns", {"logical_date": None}, token=token)
    deadline = time.monotonic() + timeout
    path = f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    while time.monotonic() < deadline:
        try:
            run = api_get(settings, path, token=token, timeout=30)
        except TimeoutError:  # one api-server worker on a busy machine: ask again
            continue
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(2)
    raise ServiceError(f"run {run['dag_run_id']} of {dag_id} still {run['state']} after {timeout:.0f}s")


def dag_ids(settings: Settings) -> list[str]:
    """DAG ids the Airflow API lists (what the dag-processor has parsed)."""
    answer = api_get(settings, "dags?limit=1000")
    return sorted(d["dag_id"] for d in answer.get("dags", []))
