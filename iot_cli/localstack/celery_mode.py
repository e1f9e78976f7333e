"""``AIRFLOW_EXECUTOR=celery`` in local mode: Redis as the broker and a Celery worker per queue.

* ``redis``: Debian's ``redis-server`` (``scripts/bootstrap.sh`` installs it when missing), bound to
  127.0.0.1 on ``REDIS_PORT``, password ``REDIS_PASSWORD``, data under ``<LOCAL_DIR>/redis``. Its
  configuration file (0600, in the state directory) holds the password, so neither the command line
  nor supervisord's configuration does.
* ``airflow-worker-hot``: ``airflow celery worker --queues hot`` (extract, stage, forecast, alerts:
  the tasks of ``orchestration.defaults.HOT_PATH_ARGS``); it serves the task logs of both workers
  on ``AIRFLOW_WORKER_LOG_SERVER_PORT`` (they share one log folder; the scheduler serves none
  under Celery).
* ``airflow-worker-batch``: ``--queues batch,default`` (everything else).

Each worker has a Celery node name of its own (``hot@<stack>``, ``batch@<stack>``), which its
health check pings through the broker. Workers on other machines: docs/operations.md.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from iot_core.connections import pg_url
from iot_core.settings import Settings

EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
REDIS_SERVER = "redis-server"


@dataclass(frozen=True)
class Worker:
    service: str  # supervisord program name
    queues: str  # comma-separated Celery queues it consumes
    serves_logs: bool

    def concurrency(self, settings: Settings) -> int:
        return settings.airflow_hot_worker_concurrency if self.queues == "hot" else \
            settings.airflow_batch_worker_concurrency

    def node_name(self, settings: Settings) -> str:
        """Celery node name, unique per stack on this host (two stacks can share nothing, but the
        name also tells a user's ``celery inspect`` output which stack a worker belongs to)."""
        return f"{self.queues.split(',')[0]}@iot-{settings.airflow_port}"


WORKERS = (Worker("airflow-worker-hot", "hot", serves_logs=True),
           Worker("airflow-worker-batch", "batch,default", serves_logs=False))
WORKER_SERVICES = tuple(w.service for w in WORKERS)


def executor_name(settings: Settings) -> str:
    try:
        return EXECUTORS[settings.airflow_executor.strip().lower()]
    except KeyError:
        raise ValueError(f"AIRFLOW_EXECUTOR={settings.airflow_executor!r}: use one of {', '.join(EXECUTORS)}") from None


def enabled(settings: Settings) -> bool:
    return executor_name(settings) == "CeleryExecutor"


def worker(service: str) -> Worker:
    return next(w for w in WORKERS if w.service == service)


def broker_url(settings: Settings) -> str:
    password = settings.redis_password.get_secret_value()
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{settings.redis_host}:{settings.redis_port}/0"


def airflow_celery_env(settings: Settings) -> dict[str, str]:
    """Airflow's Celery settings (only set in celery mode); the broker URL holds the password, so
    it travels in the environment, never on a command line."""
    return {
        "AIRFLOW__CELERY__BROKER_URL": broker_url(settings),
        # task states in Airflow's own metadata database: nothing more to run or back up
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url("airflow", settings.airflow_db, settings=settings),
        # what no pool/queue of its own names (orchestration/defaults.py gives every task one) is batch
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "batch",
        # one process sends the queued tasks to the broker: 2 cores
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
    }


def worker_argv(service: str, settings: Settings) -> list[str]:
    """``airflow celery worker`` arguments (after ``airflow``) of one worker."""
    w = worker(service)
    argv = ["celery", "worker", "--queues", w.queues, "--concurrency", str(w.concurrency(settings)),
            "--celery-hostname", w.node_name(settings),
            # each worker its own pid file: both share AIRFLOW_HOME
            "--pid", str(settings.local_dir / "run" / f"{service}.celery.pid"),
            # no gossip or mingle traffic between the workers: they share nothing but the queues
            "--without-gossip", "--without-mingle"]
    if not w.serves_logs:
        argv.append("--skip-serve-logs")
    return argv


# ---------------------------------------------------------------- redis
def redis_dir(settings: Settings) -> Path:
    return settings.local_dir / "redis"


def write_redis_config(settings: Settings) -> Path:
    """``run/redis.conf`` (0600): 127.0.0.1 and the port from the settings, the password, data in
    ``<LOCAL_DIR>/redis`` (snapshots every minute when anything changed, so queued tasks survive a
    restart)."""
    data = redis_dir(settings)
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    lines = [f"bind {settings.redis_host}", f"port {settings.redis_port}", "protected-mode yes",
             f'dir "{data}"', "dbfilename dump.rdb", "save 60 1", "appendonly no", "daemonize no",
             'logfile ""', "loglevel notice"]
    password = settings.redis_password.get_secret_value()
    if password:
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'requirepass "{escaped}"')
    path = settings.local_dir / "run" / "redis.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def redis_server_path() -> str:
    import shutil

    from iot_cli.localstack.process import ServiceError

    path = shutil.which(REDIS_SERVER) or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if not path:
        raise ServiceError("AIRFLOW_EXECUTOR=celery needs redis-server: run `make install` (installs Debian's "
                           "redis-server as root) or `sudo apt-get install redis-server`")
    return path


def redis_client(settings: Settings, timeout: float = 3):
    import redis

    return redis.Redis(host=settings.redis_host, port=settings.redis_port,
                       password=settings.redis_password.get_secret_value() or None,
                       socket_timeout=timeout, socket_connect_timeout=timeout)


def redis_healthy(settings: Settings) -> bool:
    try:
        with contextlib.closing(redis_client(settings)) as client:
            return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False


def worker_healthy(service: str, settings: Settings, timeout: float = 3) -> bool:
    """The worker answers a Celery ping through the broker (it is consuming, not only alive)."""
    try:
        from celery import Celery

        app = Celery(broker=broker_url(settings))
        try:
            replies = app.control.ping(destination=[worker(service).node_name(settings)], timeout=timeout)
        finally:
            app.close()
        return bool(replies)
    except Exception:  # noqa: BLE001
        return False
