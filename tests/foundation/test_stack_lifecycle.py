"""`iot stack up/status/down` as a new user runs it: the whole local platform on its own ports.

The package's throw-away stack (tests/foundation/conftest.py: own PostgreSQL, MongoDB protocol
server with authentication, Airflow 3 components, MLflow, simulator and API, in a temporary state
directory) is started by the real CLI, and the tests walk through the "done when" lists in order:
health, a dropped-in DAG that runs, idempotent `up`, a service stopped or killed and brought
back, every port on 127.0.0.1, a second stack refused on a taken port, `down` and `up` keeping
the data.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from stack_helpers import LocalStack, explain

from iot_cli.localstack import airflow, launch
from iot_cli.localstack.supervision import Supervisor
from iot_core.connections import mongo_client, pg_connect

pytestmark = [pytest.mark.slow, pytest.mark.long]

AIRFLOW_RECOVERY_SECONDS = 420  # imports of a restarted component on 2 busy cores
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


@pytest.fixture(scope="module")
def stack(local_stack):
    return local_stack


def test_up_brings_every_service_healthy(stack):
    assert stack.first_up.returncode == 0, explain(stack.first_up)
    assert "The platform is up." in stack.first_up.stdout
    assert f"http://127.0.0.1:{stack.settings.airflow_port}" in stack.first_up.stdout
    assert f"Dashboard    http://127.0.0.1:{stack.settings.dashboard_port}/" in stack.first_up.stdout
    r = stack.iot("status")
    assert r.returncode == 0, explain(r)
    for service in ("postgres", "mongo", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "mlflow", "generator", "api", "dashboard"):
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(service + " "))
        assert "healthy" in line and "unhealthy" not in line, r.stdout
    # TimescaleDB's background jobs (warehouse/job_health.py): none on the plain PostgreSQL of local mode
    jobs = next(ln for ln in r.stdout.splitlines() if ln.startswith("timescaledb-jobs "))
    assert "plain PostgreSQL" in jobs or "no failures" in jobs, r.stdout
    assert (stack.settings.local_dir / "logs" / "airflow-scheduler.log").exists()
    r = stack.iot("logs", "--no-follow", "--lines", "5", "--service", "postgres", "--service", "airflow-scheduler")
    assert r.returncode == 0, explain(r)
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
    assert run["state"] == "success", (run, _task_logs(stack.settings.local_dir, PROBE_DAG_ID))


def _task_logs(state_dir: Path, dag_id: str) -> str:
    """The tails of a DAG's task logs and of the scheduler's log, to tell why a run failed."""
    logs = sorted((state_dir / "airflow" / "logs").glob(f"dag_id={dag_id}/**/*.log"))
    logs.append(state_dir / "logs" / "airflow-scheduler.log")
    return "\n".join(f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                     for p in logs if p.exists())


def test_second_up_says_what_is_already_running_and_starts_nothing(stack):
    sup = Supervisor(stack.settings.local_dir)
    pids_before = {name: sup.pid_of(name) for name in ("mongo", "airflow-scheduler", "mlflow", "generator")}
    r = stack.iot("up")
    assert r.returncode == 0, explain(r)
    assert "postgres      already running" in r.stdout
    assert "airflow-scheduler      already running" in r.stdout
    assert "migrating" not in r.stdout
    assert pids_before == {name: sup.pid_of(name) for name in pids_before}


def test_status_fails_when_a_service_is_stopped_and_up_starts_only_it(stack):
    sup = Supervisor(stack.settings.local_dir)
    assert sup.stop_programs(["mongo"]) == ["mongo"]  # stopped on purpose: supervisord leaves it
    r = stack.iot("status")
    assert r.returncode == 1, explain(r)
    assert "unhealthy: mongo" in r.stderr
    r = stack.iot("up")
    assert r.returncode == 0, explain(r)
    assert "mongo         starting" in r.stdout
    assert "mlflow        already running" in r.stdout
    assert stack.iot("status").returncode == 0


def _group_alive(pgid: int) -> list[int]:
    return launch.group_members(pgid)


def test_a_killed_service_is_restarted_counted_and_its_leftovers_ended(stack):
    s = stack.settings
    sup = Supervisor(s.local_dir)
    old = sup.pid_of("airflow-scheduler")
    # wait until the scheduler has forked its log server and LocalExecutor workers
    deadline = time.monotonic() + 300
    while len(_group_alive(old)) < 3 and time.monotonic() < deadline:
        time.sleep(2)
    assert len(_group_alive(old)) >= 3, "the scheduler should have children in its process group"
    os.kill(old, signal.SIGKILL)

    # back when the new scheduler's own log server listens (the old heartbeat looks healthy meanwhile)
    deadline = time.monotonic() + AIRFLOW_RECOVERY_SECONDS
    while time.monotonic() < deadline:
        new = sup.pid_of("airflow-scheduler")
        if new and new != old and not _group_alive(old) and \
                _listeners_of(new).get(s.airflow_worker_log_server_port) == "127.0.0.1":
            break
        time.sleep(3)
    r = stack.iot("status")
    assert r.returncode == 0, explain(r)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("airflow-scheduler "))
    assert line.split()[1] != str(old) and line.split()[3] == "1", r.stdout  # new pid, one restart
    assert _group_alive(old) == []  # the old log server and workers are gone with it
    log = (s.local_dir / "logs" / "restart-counter.log").read_text()
    assert f"airflow-scheduler: pid {old} exited unexpectedly" in log
    assert "airflow-scheduler: restarting (restart 1" in log
    assert f"left by its previous run (process group {old})" in (s.local_dir / "logs" / "airflow-scheduler.log").read_text()
    # the log server of the new scheduler took over the port
    assert _listeners_of(sup.pid_of("airflow-scheduler")).get(s.airflow_worker_log_server_port) == "127.0.0.1"
    assert stack.iot("status").returncode == 0


def _listeners_of(pid: int) -> dict[int, str]:
    """Listening port -> address of ``pid`` and its descendants."""
    out: dict[int, str] = {}
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for proc in procs:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    out[conn.laddr.port] = conn.laddr.ip
        except psutil.NoSuchProcess:
            continue
    return out


def test_every_service_listens_on_its_configured_ports_on_127_0_0_1_only(stack):
    s = stack.settings
    sup = Supervisor(s.local_dir)
    listeners: dict[int, str] = {}
    for info in sup.info().values():
        if info["pid"]:
            listeners.update(_listeners_of(info["pid"]))
    assert set(listeners.values()) == {"127.0.0.1"}, listeners
    wanted = {s.pg_port, s.mongo_port, s.airflow_port, s.mlflow_port, s.api_port, s.dashboard_port,
              s.airflow_worker_log_server_port, s.airflow_trigger_log_server_port}
    assert wanted <= set(listeners), (wanted, listeners)
    # every port the stack listens on is one of .env's (no default Airflow port such as 8793)
    assert set(listeners) <= wanted | {s.airflow_scheduler_health_port}, listeners


def test_a_second_stack_on_a_taken_port_is_refused_with_the_setting_named(stack):
    other = LocalStack(Path(tempfile.mkdtemp(prefix="iot-stack-second-")), stack.dags_dir)
    taken = stack.settings.airflow_trigger_log_server_port
    other.env["AIRFLOW_TRIGGER_LOG_SERVER_PORT"] = str(taken)
    r = other.iot("up", timeout=120)
    assert r.returncode == 1, explain(r)
    assert f"airflow-triggerer: port {taken} (AIRFLOW_TRIGGER_LOG_SERVER_PORT in .env) is in use" in r.stderr
    # refused before anything started: no supervisord, no database cluster
    assert not Supervisor(other.state_dir).running()
    assert not (other.state_dir / "pg" / "data" / "PG_VERSION").exists()
    assert other.iot("status").returncode == 1


def test_down_then_up_keeps_the_data(stack):
    s = stack.settings
    with mongo_client(s) as client:
        client[s.mongo_db]["stack_probe"].replace_one({"_id": "kept"}, {"_id": "kept", "v": 42}, upsert=True)
    with pg_connect("loader", settings=s, autocommit=True) as conn:
        conn.execute("create table if not exists raw.stack_probe (v int)")
        conn.execute("insert into raw.stack_probe values (42)")

    r = stack.iot("down", timeout=180)
    assert r.returncode == 0, explain(r)
    assert "postgres" in r.stdout and "data kept" in r.stdout
    assert stack.iot("status").returncode == 1
    assert not list((s.local_dir / "run").glob("*.pid"))  # every pid we wrote is gone with its process

    r = stack.iot("up")
    assert r.returncode == 0, explain(r)
    with mongo_client(s) as client:
        assert client[s.mongo_db]["stack_probe"].find_one({"_id": "kept"})["v"] == 42
    with pg_connect("loader", settings=s) as conn:
        assert conn.execute("select v from raw.stack_probe").fetchall() == [(42,)]
    assert PROBE_DAG_ID in airflow.dag_ids(s)  # Airflow's metadata survived too
