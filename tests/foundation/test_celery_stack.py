"""``AIRFLOW_EXECUTOR=celery``: the local stack runs Redis and a Celery worker per queue, and the
hot path and the trip summary's mapped shards run on the worker of their queue (issue 16).

A stack of its own (free ports, throw-away state directory and metadata database, started by the
real CLI like `make up`): Redis from Debian's redis-server with a password, the workers `hot` and
`batch` beside the scheduler. The extract (hot) and the trip summary (batch, one mapped task per
device shard) are triggered through the Airflow API; each task instance must be in its pool and
queue, and the worker of that queue, and only it, must have executed it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.parse
from datetime import date
from pathlib import Path

import pytest
from stack_helpers import LocalStack, explain

from iot_cli.localstack import airflow, celery_mode
from iot_core.settings import PROJECT_ROOT
from trips.lake import Lake
from trips.lakegen import LakeSpec, generate_lake, seed_config

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(1500)]

HOT_DAG, BATCH_DAG = "iot_raw_extract", "trip_summary_daily"
LAKE_DAY = date(2026, 11, 20)
SHARD_SIZE = 1


@pytest.fixture(scope="module")
def celery_stack():
    if not shutil.which(celery_mode.REDIS_SERVER) and not Path("/usr/bin/redis-server").exists():
        pytest.fail("redis-server is missing: `make install` installs it (scripts/bootstrap.sh)")
    state_dir = Path(tempfile.mkdtemp(prefix="iot-celery-test-"))
    dags_dir = Path(tempfile.mkdtemp(prefix="iot-celery-dags-"))
    dags_dir.chmod(0o755)
    for name in (HOT_DAG, BATCH_DAG):
        shutil.copy(PROJECT_ROOT / "dags" / f"{name}.py", dags_dir / f"{name}.py")
    lake_root = Path(tempfile.mkdtemp(prefix="iot-celery-lake-"))
    devices = generate_lake(Lake(lake_root), LakeSpec(devices=3, days=1, start=LAKE_DAY, trips_per_day=2,
                                                      min_trip_minutes=3, max_trip_minutes=6, imu_hz=1, seed=3))
    config = lake_root.parent / f"{lake_root.name}-aggregations.json"
    config.write_text(json.dumps(seed_config(devices)))
    stack = LocalStack(state_dir, dags_dir, settings={
        "AIRFLOW_EXECUTOR": "celery",
        # no scheduled extract runs: the test triggers one
        "EXTRACT_SCHEDULE": "@yearly",
        "TRIPS_LAKE_ROOT": str(lake_root), "TRIPS_CONFIG": str(config), "TRIPS_SHARD_SIZE": str(SHARD_SIZE),
        "AIRFLOW_HOT_WORKER_CONCURRENCY": "1", "AIRFLOW_BATCH_WORKER_CONCURRENCY": "2",
    })
    stack.devices = devices
    stack.lake_root = lake_root
    stack.first_up = stack.iot("up", "--skip", "generator", "--skip", "api", timeout=900)
    yield stack
    r = stack.iot("down", timeout=300)
    shutil.rmtree(state_dir, ignore_errors=True)
    shutil.rmtree(dags_dir, ignore_errors=True)
    shutil.rmtree(lake_root, ignore_errors=True)
    config.unlink(missing_ok=True)
    assert r.returncode == 0, explain(r)
    assert "airflow-worker-hot" in r.stdout and "redis" in r.stdout


def _row(status_stdout: str, service: str) -> str:
    return next(line for line in status_stdout.splitlines() if line.startswith(service + " "))


def test_up_runs_redis_and_a_worker_per_queue_healthy(celery_stack):
    stack = celery_stack
    assert stack.first_up.returncode == 0, explain(stack.first_up)
    r = stack.iot("status")
    assert r.returncode == 0, explain(r)
    for service in ("redis", "airflow-worker-hot", "airflow-worker-batch", "airflow-scheduler"):
        assert "healthy" in _row(r.stdout, service) and "unhealthy" not in _row(r.stdout, service), r.stdout
    # the broker answers only with the password, on 127.0.0.1
    assert celery_mode.redis_healthy(stack.settings)
    assert not celery_mode.redis_healthy(stack.settings.model_copy(update={"redis_password": "wrong"}))
    conf = (stack.state_dir / "run" / "redis.conf").read_text()
    assert "bind 127.0.0.1" in conf and f'dir "{stack.state_dir / "redis"}"' in conf
    assert (stack.state_dir / "run" / "redis.conf").stat().st_mode & 0o077 == 0
    # the password is nowhere in supervisord's configuration (which holds the command lines)
    assert stack.secrets["REDIS_PASSWORD"] not in (stack.state_dir / "run" / "supervisord.conf").read_text()
    # the pools the scheduler enforces, sized from the settings
    pools = {p["name"]: p["slots"] for p in airflow.api_get(stack.settings, "pools")["pools"]}
    s = stack.settings
    assert pools["batch"] == s.airflow_batch_slots and pools["hot"] == s.airflow_parallelism - s.airflow_batch_slots


def _wait_parsed(stack, dag_ids, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(dag_ids) <= set(airflow.dag_ids(stack.settings)):
            return
        time.sleep(3)
    pytest.fail(f"{dag_ids} not parsed after {timeout}s: {airflow.dag_ids(stack.settings)}")


def _trigger(stack, dag_id: str, conf: dict | None = None) -> str:
    token = airflow.access_token(stack.settings)
    airflow.api_request(stack.settings, "PATCH", f"dags/{dag_id}", {"is_paused": False}, token=token)
    run = airflow.api_request(stack.settings, "POST", f"dags/{dag_id}/dagRuns",
                              {"logical_date": None, "conf": conf or {}}, token=token)
    return run["dag_run_id"]


def _wait_run(stack, dag_id: str, run_id: str, timeout: float = 600) -> dict:
    path = f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    deadline = time.monotonic() + timeout
    run = {}
    while time.monotonic() < deadline:
        try:
            run = airflow.api_get(stack.settings, path, timeout=30)
        except TimeoutError:
            continue
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(3)
    pytest.fail(f"{dag_id} {run_id} still {run.get('state')} after {timeout}s")


def _task_instances(stack, dag_id: str, run_id: str) -> list[dict]:
    path = f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
    return airflow.api_get(stack.settings, path)["task_instances"]


def _executed_by(stack, worker_service: str) -> str:
    """What a worker's log says it executed ("Executing workload in Celery: ... dag_id=... ")."""
    log = stack.state_dir / "logs" / f"{worker_service}.log"
    return "\n".join(line for line in log.read_text(errors="replace").splitlines() if "Executing workload" in line)


def _task_logs(stack, dag_id: str) -> str:
    logs = sorted((stack.state_dir / "airflow" / "logs").glob(f"dag_id={dag_id}/**/*.log"))
    logs += [stack.state_dir / "logs" / f"{name}.log"
             for name in ("airflow-scheduler", *celery_mode.WORKER_SERVICES)]
    return "\n".join(f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                     for p in logs if p.exists())


def test_hot_path_and_mapped_trip_shards_run_on_the_worker_of_their_queue(celery_stack):
    stack = celery_stack
    assert stack.first_up.returncode == 0, explain(stack.first_up)
    _wait_parsed(stack, [HOT_DAG, BATCH_DAG])
    hot_run = _trigger(stack, HOT_DAG)
    batch_run = _trigger(stack, BATCH_DAG, {"day": LAKE_DAY.isoformat(), "shard_size": SHARD_SIZE})
    for dag_id, run_id in ((HOT_DAG, hot_run), (BATCH_DAG, batch_run)):
        run = _wait_run(stack, dag_id, run_id)
        assert run["state"] == "success", (dag_id, _task_logs(stack, dag_id))

    hot_tis = _task_instances(stack, HOT_DAG, hot_run)
    batch_tis = _task_instances(stack, BATCH_DAG, batch_run)
    shards = [ti for ti in batch_tis if ti["task_id"] == "summarise_shard"]
    assert len(shards) == len(stack.devices) // SHARD_SIZE  # one mapped task per device shard
    assert {(ti["pool"], ti["queue"]) for ti in hot_tis} == {("hot", "hot")}
    assert {(ti["pool"], ti["queue"]) for ti in batch_tis} == {("batch", "batch")}

    hot_log, batch_log = _executed_by(stack, "airflow-worker-hot"), _executed_by(stack, "airflow-worker-batch")
    assert f"dag_id='{HOT_DAG}'" in hot_log and f"dag_id='{HOT_DAG}'" not in batch_log, (hot_log, batch_log)
    assert f"dag_id='{BATCH_DAG}'" in batch_log and f"dag_id='{BATCH_DAG}'" not in hot_log, (hot_log, batch_log)
    # every mapped shard went to the batch worker
    assert batch_log.count("task_id='summarise_shard'") >= len(shards), batch_log
    # and the day's summary is written
    out = Lake(stack.lake_root).output_relpath(LAKE_DAY)
    assert (stack.lake_root / out).exists()


def test_down_stops_the_workers_before_the_api_server_and_redis_after(celery_stack):
    """A task running when `make down` stopped the api-server first failed once (its execution API
    was gone): the workers and the scheduler go in the first group, Redis after the api-server."""
    from iot_cli.localstack.stack import STOP_ORDER

    first = next(i for i, group in enumerate(STOP_ORDER) if "airflow-api-server" in group)
    before = {name for group in STOP_ORDER[:first] for name in group}
    assert {"airflow-scheduler", *celery_mode.WORKER_SERVICES} <= before
    assert any("redis" in group for group in STOP_ORDER[first + 1:])
