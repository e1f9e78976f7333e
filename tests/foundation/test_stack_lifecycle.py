"""`iot stack up/status/down` as a new user runs it: the whole local platform on its own ports.

One throw-away stack (own PostgreSQL, MongoDB protocol server, Airflow 3 components and MLflow,
in a temporary state directory) is started by the real CLI in a subprocess, with none of the
session servers' settings, and the tests walk through the issue's "done when" list in order.
The simulator and the API belong to other areas and are skipped here (`--skip`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from iot_cli.localstack import airflow
from iot_cli.localstack.process import ManagedProcess, free_port
from iot_core.connections import mongo_client, pg_connect
from iot_core.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.slow

PROBE_DAG_ID = "iot_stack_probe"
PROBE_DAG = f'''
"""A trivial DAG dropped into the DAGs folder by the stack test."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(dag_id="{PROBE_DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1), tags=["probe"])
def probe():
    @task
    def hello():
        return 1

    hello()


probe()
'''
SKIP_OTHER_AREAS = ["--skip", "generator", "--skip", "api"]


class LocalStack:
    def __init__(self, state_dir: Path, dags_dir: Path):
        ports = {name: free_port() for name in ("PG_PORT", "MONGO_PORT", "AIRFLOW_PORT", "MLFLOW_PORT", "API_PORT")}
        # the session fixtures put their servers' settings (and Airflow's) in os.environ: drop them
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("AIRFLOW") and k not in ports and k not in ("LOCAL_DIR", "MONGO_DB")}
        self.env = {
            **base, **{k: str(v) for k, v in ports.items()},
            "LOCAL_DIR": str(state_dir),
            "MONGO_DB": "iot_stack_test",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
        }
        self.settings = Settings(pg_port=ports["PG_PORT"], mongo_port=ports["MONGO_PORT"],
                                 airflow_port=ports["AIRFLOW_PORT"], mlflow_port=ports["MLFLOW_PORT"],
                                 api_port=ports["API_PORT"], local_dir=state_dir, mongo_db="iot_stack_test")

    def iot(self, *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "iot_cli.main", "stack", *args], env=self.env,
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def _explain(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}"


@pytest.fixture(scope="module")
def stack():
    # 0755: PostgreSQL runs as the postgres user when the tests run as root
    state_dir = Path(tempfile.mkdtemp(prefix="iot-stack-test-"))
    os.chmod(state_dir, 0o755)
    dags_dir = state_dir / "dags"
    dags_dir.mkdir()
    s = LocalStack(state_dir, dags_dir)
    s.dags_dir = dags_dir
    s.first_up = s.iot("up", *SKIP_OTHER_AREAS)
    yield s
    r = s.iot("down", timeout=180)
    shutil.rmtree(state_dir, ignore_errors=True)
    assert r.returncode == 0, _explain(r)


def test_up_brings_every_service_healthy(stack):
    assert stack.first_up.returncode == 0, _explain(stack.first_up)
    assert "The platform is up." in stack.first_up.stdout
    assert f"http://127.0.0.1:{stack.settings.airflow_port}" in stack.first_up.stdout
    r = stack.iot("status")
    assert r.returncode == 0, _explain(r)
    for service in ("postgres", "mongo", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "mlflow"):
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(service + " "))
        assert "healthy" in line and "unhealthy" not in line, r.stdout
    assert (stack.settings.local_dir / "logs" / "airflow-scheduler.log").exists()
    r = stack.iot("logs", "--no-follow", "--lines", "5", "--service", "postgres", "--service", "airflow-scheduler")
    assert r.returncode == 0, _explain(r)
    assert "postgres.log <==" in r.stdout and "airflow-scheduler.log <==" in r.stdout


def test_dag_dropped_into_dags_folder_is_listed_by_the_airflow_api(stack):
    (stack.dags_dir / f"{PROBE_DAG_ID}.py").write_text(PROBE_DAG)
    deadline = time.monotonic() + 120
    listed: list[str] = []
    while time.monotonic() < deadline:
        listed = airflow.dag_ids(stack.settings)
        if PROBE_DAG_ID in listed:
            break
        time.sleep(2)
    assert PROBE_DAG_ID in listed
    dag = airflow.api_get(stack.settings, f"dags/{PROBE_DAG_ID}")
    assert dag["is_paused"] is True  # new DAGs start paused (AIRFLOW_DAGS_PAUSED_AT_CREATION)
    # switched on and triggered, it really runs: scheduler -> LocalExecutor -> execution API
    run = airflow.trigger_and_wait(stack.settings, PROBE_DAG_ID, timeout=180)
    assert run["state"] == "success", run


def test_second_up_says_what_is_already_running_and_starts_nothing(stack):
    pids_before = {name: ManagedProcess(name, stack.settings.local_dir).pid()
                   for name in ("mongo", "airflow-scheduler", "mlflow")}
    r = stack.iot("up", *SKIP_OTHER_AREAS)
    assert r.returncode == 0, _explain(r)
    assert "postgres      already running" in r.stdout
    assert "airflow-scheduler      already running" in r.stdout
    assert "migrating" not in r.stdout
    assert pids_before == {name: ManagedProcess(name, stack.settings.local_dir).pid() for name in pids_before}


def test_status_fails_when_a_service_is_down_and_up_restarts_only_it(stack):
    assert ManagedProcess("mongo", stack.settings.local_dir).stop()
    r = stack.iot("status")
    assert r.returncode == 1, _explain(r)
    assert "unhealthy: mongo" in r.stderr
    r = stack.iot("up", *SKIP_OTHER_AREAS)
    assert r.returncode == 0, _explain(r)
    assert "mongo         starting" in r.stdout
    assert "mlflow        already running" in r.stdout
    assert stack.iot("status").returncode == 0


def test_down_then_up_keeps_the_data(stack):
    s = stack.settings
    with mongo_client(s) as client:
        client[s.mongo_db]["stack_probe"].replace_one({"_id": "kept"}, {"_id": "kept", "v": 42}, upsert=True)
    with pg_connect("loader", settings=s, autocommit=True) as conn:
        conn.execute("create table if not exists raw.stack_probe (v int)")
        conn.execute("insert into raw.stack_probe values (42)")

    r = stack.iot("down", timeout=180)
    assert r.returncode == 0, _explain(r)
    assert "postgres" in r.stdout and "data kept" in r.stdout
    assert stack.iot("status").returncode == 1
    assert not list((s.local_dir / "run").glob("*.pid"))  # every pid we wrote is gone with its process

    r = stack.iot("up", *SKIP_OTHER_AREAS)
    assert r.returncode == 0, _explain(r)
    with mongo_client(s) as client:
        assert client[s.mongo_db]["stack_probe"].find_one({"_id": "kept"})["v"] == 42
    with pg_connect("loader", settings=s) as conn:
        assert conn.execute("select v from raw.stack_probe").fetchall() == [(42,)]
    assert PROBE_DAG_ID in airflow.dag_ids(s)  # Airflow's metadata survived too
