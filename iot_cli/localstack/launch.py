"""``python -m iot_cli.localstack.launch SERVICE``: how supervisord starts a service of the local stack.

Each start, and so each restart after a crash:

1. stops what a killed previous run of the service left behind: supervisord runs each service
   as the leader of its own process group, and children of a leader killed with SIGKILL (Airflow's
   task log server and LocalExecutor workers, MLflow's uvicorn) live on in that group, holding
   its ports; the group's id cannot be reused while any of them lives, so it is safe to end;
2. waits until the databases the service needs answer (as the service's own role), logging
   what it waits for: a service that died in a database outage waits here, cheaply, instead of
   crash-looping, and comes back by itself once the database is back;
3. builds the service's environment from the settings (``.env`` and the environment): secrets
   such as the MLflow backend store URI or Airflow's database URL and keys reach the process
   through its environment (readable by its owner only), never through its command line, the
   supervisord configuration or a log;
4. replaces itself with the service (same pid), or, for Airflow, runs it in this process after
   binding Airflow's task log servers to 127.0.0.1 (Airflow hard-codes all interfaces).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from iot_core.settings import PROJECT_ROOT, Settings, get_settings

AIRFLOW_COMPONENTS = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                      "airflow-worker-hot", "airflow-worker-batch")  # the workers: celery mode only
# Airflow processes that fork the task processes: they start with dbt, dlt, ... already imported
TASK_RUNNERS = ("airflow-scheduler", "airflow-worker-hot", "airflow-worker-batch")
LOOPBACK = "127.0.0.1"
WAIT_LOG_EVERY_SECONDS = 60
POLL_SECONDS = 2.0


# ---------------------------------------------------------------- leftovers of a killed run
def group_file(settings: Settings, service: str) -> Path:
    return settings.local_dir / "run" / f"{service}.group"


def group_members(pgid: int) -> list[int]:
    """Pids of the live processes in process group ``pgid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields after the command: state, ppid, pgrp; a zombie holds nothing
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def end_previous_group(settings: Settings, service: str, log=print, grace_seconds: float = 10) -> list[int]:
    """End what the previous run of ``service`` left in its process group; remember ours."""
    path = group_file(settings, service)
    try:
        previous = int(path.read_text().strip())
    except (OSError, ValueError):
        previous = None
    ended: list[int] = []
    if previous and previous != os.getpgrp():
        ended = group_members(previous)
        if ended:
            log(f"{service}: ending {len(ended)} process(es) left by its previous run (process group {previous})")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(previous, signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            while group_members(previous) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(previous, signal.SIGKILL)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpgrp()))
    return ended


# ---------------------------------------------------------------- dependencies
def _postgres_answers(settings: Settings, role: str, database: str) -> bool:
    from iot_core.connections import pg_connect

    try:
        with pg_connect(role, database, autocommit=True, settings=settings) as conn:
            conn.execute("select 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False


def _mongo_answers(settings: Settings) -> bool:
    from iot_core.connections import mongo_client

    try:
        with mongo_client(settings, serverSelectionTimeoutMS=2000) as client:
            client[settings.mongo_db].command("ping")
        return True
    except Exception:  # noqa: BLE001
        return False


def dependencies(service: str, settings: Settings) -> list[tuple[str, Callable[[], bool]]]:
    """(what, check) pairs a service waits for. The API and the dashboard wait for nothing: the API answers 503 while a
    database is away."""
    s = settings
    if service in ("airflow-worker-hot", "airflow-worker-batch"):
        from iot_cli.localstack import celery_mode

        return [(f"PostgreSQL {s.pg_host}:{s.pg_port} (database {s.airflow_db})",
                 lambda: _postgres_answers(s, "airflow", s.airflow_db)),
                (f"Redis {s.redis_host}:{s.redis_port}", lambda: celery_mode.redis_healthy(s))]
    if service in AIRFLOW_COMPONENTS:
        return [(f"PostgreSQL {s.pg_host}:{s.pg_port} (database {s.airflow_db})",
                 lambda: _postgres_answers(s, "airflow", s.airflow_db))]
    if service == "mlflow":
        return [(f"PostgreSQL {s.pg_host}:{s.pg_port} (database {s.mlflow_db})",
                 lambda: _postgres_answers(s, "mlflow", s.mlflow_db))]
    if service == "generator":
        return [(f"MongoDB {s.mongo_host}:{s.mongo_port}", lambda: _mongo_answers(s))]
    return []


def wait_for_dependencies(service: str, settings: Settings, log=print, sleep=time.sleep) -> float:
    """Block until every dependency answers; the seconds waited."""
    started = time.monotonic()
    for what, check in dependencies(service, settings):
        logged = None
        while not check():
            now = time.monotonic()
            if logged is None or now - logged >= WAIT_LOG_EVERY_SECONDS:
                log(f"{service}: waiting for {what} ({now - started:.0f} s so far)")
                logged = now
            sleep(POLL_SECONDS)
        if logged is not None:
            log(f"{service}: {what} answers after {time.monotonic() - started:.0f} s; starting")
    return time.monotonic() - started


# ---------------------------------------------------------------- how each service runs
def service_env(service: str, settings: Settings) -> dict[str, str]:
    from iot_cli.localstack import airflow, mlflow

    if service in AIRFLOW_COMPONENTS:
        return airflow.component_env(settings)
    if service == "mlflow":
        return mlflow.env(settings)
    return {}


def service_argv(service: str, settings: Settings) -> list[str]:
    from iot_cli.localstack import celery_mode, mlflow

    if service == "mlflow":
        return mlflow.argv(settings)
    if service == "redis":  # the password is in the configuration file (0600), not on the command line
        return [celery_mode.redis_server_path(), str(celery_mode.write_redis_config(settings))]
    if service == "generator":
        return generator_argv(settings)
    if service == "api":
        return [sys.executable, "-m", "uvicorn", "api.app:app", "--host", LOOPBACK, "--port", str(settings.api_port)]
    if service == "dashboard":
        return dashboard_argv(settings)
    raise ValueError(f"unknown service {service!r}")


def dashboard_argv(settings: Settings, address: str = LOOPBACK) -> list[str]:
    """``streamlit run dashboard/app.py`` on this machine only, without usage statistics (no network
    here) or file watching (the code does not change under a running stack)."""
    return [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboard" / "app.py"),
            "--server.address", address, "--server.port", str(settings.dashboard_port),
            "--server.headless", "true", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
            "--client.toolbarMode", "viewer"]


def generator_argv(settings: Settings) -> list[str]:
    """``iot generate --stream`` with the simulator settings its command accepts."""
    import importlib

    command = importlib.import_module("iot_cli.commands.generate").command
    accepted = {opt for p in getattr(command, "params", []) for opt in getattr(p, "opts", [])}
    s = settings
    argv = [sys.executable, "-m", "iot_cli.main", "generate", "--stream"]
    for flag, value in (("--users", s.generator_users), ("--sensors", s.generator_sensors),
                        ("--seed", s.generator_seed), ("--bad-rate", s.generator_bad_rate)):
        if flag in accepted:
            argv += [flag, str(value)]
    return argv


def bind_log_servers_to_loopback() -> None:
    """Airflow's task log servers (scheduler, triggerer) listen on every interface, hard-coded in
    ``airflow.utils.serve_logs.core``; local mode serves this machine only. The log server runs in
    a forked child: there, and only there, uvicorn is told to bind 127.0.0.1."""
    import airflow.utils.serve_logs as serve_logs_package
    from airflow.utils.serve_logs import core

    original = core.serve_logs

    def serve_logs_on_loopback(port=None):
        import uvicorn

        run = uvicorn.run

        def run_on_loopback(app, **kwargs):
            kwargs["host"] = LOOPBACK
            return run(app, **kwargs)

        uvicorn.run = run_on_loopback
        return original(port)

    serve_logs_package.serve_logs = serve_logs_on_loopback
    core.serve_logs = serve_logs_on_loopback


def run_airflow(component: str) -> None:
    from iot_cli.localstack import airflow

    if component in TASK_RUNNERS:  # tasks are forked from it: load dbt, dlt, ... first
        from iot_cli.localstack.scheduler import preload

        preload()
    bind_log_servers_to_loopback()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *airflow.subcommand(component, get_settings())]
    airflow_main()


def main(service: str) -> None:
    settings = get_settings()
    log = lambda line: print(line, flush=True)  # noqa: E731 - supervisord writes it to logs/<service>.log
    end_previous_group(settings, service, log=log)
    wait_for_dependencies(service, settings, log=log)
    os.environ.update(service_env(service, settings))
    # Airflow runs in this interpreter and forks its tasks from it: honour the environment's
    # PYTHONDONTWRITEBYTECODE as set now (airflow_env switches it off), not as it was at start-up
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    os.chdir(PROJECT_ROOT)
    if service in AIRFLOW_COMPONENTS:
        run_airflow(service)
        return
    argv = service_argv(service, settings)
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1])
