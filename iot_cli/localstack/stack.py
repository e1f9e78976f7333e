"""The local stack behind `make up/down/status/logs` (DESIGN §2, local mode).

Every service runs in the background with its pid file and log under ``settings.local_dir``
(``.local/`` by default): PostgreSQL (a project-owned cluster), the MongoDB-protocol server,
the four Airflow 3 components, the MLflow tracking server, and, when their modules exist,
the data simulator and the API. ``up`` is idempotent, ``down`` stops only what ``up`` started
(by pid) and keeps the data, ``status`` reports health and fails when a service is unhealthy.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from iot_cli.localstack import airflow, mlflow, mongo, postgres
from iot_cli.localstack.process import ManagedProcess, ServiceError, port_open, wait_until
from iot_core.settings import PROJECT_ROOT, Settings

# optional services: started only when the module they run exists (other teams own them)
GENERATOR_MODULE = "iot_cli.commands.generate"
API_APP_FILE = PROJECT_ROOT / "api" / "app.py"

WAIT_SECONDS = {"postgres": 90, "mongo": 90, "mlflow": 180, "generator": 60, "api": 90}
AIRFLOW_WAIT_SECONDS = 300  # 2 cores shared with databases: the first start imports a lot


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    healthy: bool
    url: str
    note: str = ""
    required: bool = True

    @property
    def state(self) -> str:
        if self.healthy:
            return "healthy"
        if self.pid is None:
            return "stopped" if self.required else "not started"
        return "unhealthy"


@dataclass
class Stack:
    """All services of local mode for one settings object (ports, state directory)."""

    settings: Settings
    echo: Callable[[str], None] = print
    _health_cache: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ layout
    @property
    def state_dir(self) -> Path:
        return self.settings.local_dir

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.state_dir)

    def cluster(self) -> postgres.PostgresCluster:
        return postgres.cluster_for(self.settings, data_dir=self.state_dir / "pg" / "data")

    def log_files(self) -> dict[str, Path]:
        """Service name -> log file (PostgreSQL writes its own next to its data directory)."""
        files = {"postgres": self.state_dir / "pg" / "postgres.log"}
        files.update({p.stem: p for p in sorted(self.logs_dir.glob("*.log"))})
        return files

    # ------------------------------------------------------------------ optional services
    def generator_available(self) -> bool:
        return importlib.util.find_spec(GENERATOR_MODULE) is not None

    def api_available(self) -> bool:
        return API_APP_FILE.exists()

    def generator_argv(self) -> list[str]:
        """``iot generate --stream`` with the simulator settings its command accepts."""
        import importlib

        command = importlib.import_module(GENERATOR_MODULE).command
        accepted = {opt for p in getattr(command, "params", []) for opt in getattr(p, "opts", [])}
        s = self.settings
        argv = [sys.executable, "-m", "iot_cli.main", "generate", "--stream"]
        for flag, value in (("--users", s.generator_users), ("--sensors", s.generator_sensors),
                            ("--seed", s.generator_seed), ("--bad-rate", s.generator_bad_rate)):
            if flag in accepted:
                argv += [flag, str(value)]
        return argv

    def api_argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1",
                "--port", str(self.settings.api_port)]

    # ------------------------------------------------------------------ health
    def airflow_health(self, fresh: bool = False) -> dict | None:
        now = time.monotonic()
        cached = self._health_cache.get("airflow")
        if fresh or cached is None or now - cached[0] > 1.0:
            self._health_cache["airflow"] = (now, airflow.health(self.settings))
        return self._health_cache["airflow"][1]

    def postgres_pid(self) -> int | None:
        try:
            pid = int((self.state_dir / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def api_healthy(self) -> bool:
        import urllib.request

        for path in ("/health", "/docs"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.settings.api_port}{path}", timeout=10) as r:
                    if r.status == 200:
                        return True
            except OSError:
                continue
        return False

    def status(self) -> list[ServiceStatus]:
        s = self.settings
        rows = []
        pg_pid = self.postgres_pid()
        rows.append(ServiceStatus("postgres", pg_pid, pg_pid is not None and self.cluster().ready(),
                                  f"postgresql://127.0.0.1:{s.pg_port}/{s.warehouse_db}"))
        mongo_pid = self.process("mongo").pid()
        rows.append(ServiceStatus("mongo", mongo_pid, mongo_pid is not None and _probe(mongo.healthy, s),
                                  f"mongodb://127.0.0.1:{s.mongo_port}/{s.mongo_db}", mongo.server_kind()))
        health = self.airflow_health(fresh=True)
        for component in airflow.COMPONENTS:
            pid = self.process(component).pid()
            url = airflow.base_url(s) if component == "airflow-api-server" else ""
            # the components report their heartbeats through the api-server's health endpoint
            note = "health unknown: api-server not answering" if health is None and pid and url == "" else ""
            rows.append(ServiceStatus(component, pid, pid is not None and airflow.component_healthy(component, health),
                                      url, note))
        pid = self.process("mlflow").pid()
        rows.append(ServiceStatus("mlflow", pid, pid is not None and mlflow.healthy(s), mlflow.base_url(s)))
        for name, available, url in (("generator", self.generator_available(), ""),
                                     ("api", self.api_available(), f"http://127.0.0.1:{s.api_port}/docs")):
            proc = self.process(name)
            pid = proc.pid()
            healthy = pid is not None and (self.api_healthy() if name == "api" else True)
            # an optional service counts once `up` started it (its pid file exists): running but not
            # answering, or a pid file whose process died (a crash), is unhealthy
            started = proc.pid_file.exists()
            note = "" if available else "module not present yet"
            rows.append(ServiceStatus(name, pid, healthy, url, note, required=started))
        return rows

    # ------------------------------------------------------------------ up
    def up(self, skip: frozenset[str] = frozenset()) -> list[ServiceStatus]:
        s = self.settings
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # (service, health check, timeout, log, launch time)
        started: list[tuple[str, Callable[[], bool], float, Path | None, float]] = []

        # PostgreSQL first: Airflow and MLflow keep their metadata in it
        cluster = self.cluster()
        pid = self.postgres_pid()
        if pid is not None and cluster.ready():
            self.echo(f"postgres      already running (pid {pid}, healthy)")
        else:
            self._ensure_port_free("postgres", s.pg_port)
            self.echo(f"postgres      starting on port {s.pg_port} (data in {cluster.data_dir}) ...")
            fresh = not cluster.initialised()
            cluster.init()
            cluster.start(timeout=WAIT_SECONDS["postgres"])
            self.echo(f"postgres      {'initialised and ' if fresh else ''}healthy (pid {self.postgres_pid()})")
        cluster.apply_init_sql(s)  # idempotent: creates what is missing, re-syncs passwords from .env

        proc = self.process("mongo")
        if proc.running():
            self.echo(f"mongo         already running (pid {proc.pid()}, {mongo.server_kind()})")
        else:
            self._ensure_port_free("mongo", s.mongo_port)
            self.echo(f"mongo         starting {mongo.server_kind()} on port {s.mongo_port} ...")
            mongo.start(s, self.state_dir, timeout=WAIT_SECONDS["mongo"])
            self.echo(f"mongo         healthy (pid {proc.pid()})")

        # MLflow, the simulator and the API need only the databases: they start while Airflow migrates
        optional: list[tuple[str, bool, Callable[[], list[str]], Callable[[], bool], int | None]] = [
            ("mlflow", True, lambda: mlflow.argv(s), lambda: mlflow.healthy(s), s.mlflow_port),
            ("generator", self.generator_available(), self.generator_argv, lambda: True, None),
            ("api", self.api_available(), self.api_argv, self.api_healthy, s.api_port),
        ]
        env_for = {"mlflow": mlflow.env()}
        for name, available, make_argv, check, port in optional:
            proc = self.process(name)
            if name in skip:
                self.echo(f"{name:<13} skipped (--skip {name})")
            elif not available:
                what = GENERATOR_MODULE if name == "generator" else API_APP_FILE.relative_to(PROJECT_ROOT)
                self.echo(f"{name:<13} skipped: {what} does not exist yet")
            elif proc.running():
                self.echo(f"{name:<13} already running (pid {proc.pid()})")
            else:
                if port is not None:
                    self._ensure_port_free(name, port)
                pid = proc.start(make_argv(), env=env_for.get(name), cwd=PROJECT_ROOT)
                self.echo(f"{name:<13} started (pid {pid})")
                started.append((name, check, WAIT_SECONDS[name], proc.log_file, time.monotonic()))

        missing = [c for c in airflow.COMPONENTS if not self.process(c).running()]
        for c in airflow.COMPONENTS:
            if c not in missing:
                self.echo(f"{c:<22} already running (pid {self.process(c).pid()})")
        if missing:
            if "airflow-api-server" in missing:
                self._ensure_port_free("airflow-api-server", s.airflow_port)
            self.echo("airflow       migrating the metadata database (airflow db migrate) ...")
            t0 = time.monotonic()
            airflow.migrate(s, self.logs_dir / "airflow-migrate.log")
            self.echo(f"airflow       metadata database ready ({time.monotonic() - t0:.0f} s)")
            env = airflow.component_env(s)
            for c in missing:
                pid = self.process(c).start(airflow.argv(c), env=env, cwd=PROJECT_ROOT)
                self.echo(f"{c:<22} started (pid {pid})")
                started.append((c, self._airflow_check(c), AIRFLOW_WAIT_SECONDS, self.process(c).log_file,
                                time.monotonic()))

        for name, check, timeout, log, launched in started:
            self.echo(f"waiting for   {name} ...")
            proc = self.process(name)
            wait_until(lambda c=check, p=proc: _alive_or_raise(p) and c(), timeout, name, interval=1.0, log=log)
            self.echo(f"{name:<22} healthy ({time.monotonic() - launched:.0f} s after start)")
        return self.status()

    def _airflow_check(self, component: str) -> Callable[[], bool]:
        return lambda: airflow.component_healthy(component, self.airflow_health())

    def _ensure_port_free(self, name: str, port: int) -> None:
        if port_open(port):
            raise ServiceError(f"{name}: port {port} is already used by a process this stack did not start; "
                               f"stop it or choose another port in .env")

    # ------------------------------------------------------------------ down
    def down(self) -> list[str]:
        """Stop, in reverse start order, the processes whose pid files we wrote; keep the data."""
        stopped: list[str] = []
        upper = ["api", "generator", "mlflow", *reversed(list(airflow.COMPONENTS))]

        def stop(name: str) -> None:
            proc = self.process(name)
            pid = proc.pid()
            if proc.stop():
                stopped.append(name)
                self.echo(f"{name:<22} stopped (pid {pid})")

        # the clients of the databases stop together (each SIGTERM waits up to 30 s), then the databases
        with ThreadPoolExecutor(max_workers=len(upper)) as pool:
            list(pool.map(stop, upper))
        stop("mongo")
        pid = self.postgres_pid()
        if self.cluster().stop(mode="fast"):
            stopped.append("postgres")
            self.echo(f"{'postgres':<22} stopped (pid {pid})")
        if not stopped:
            self.echo("nothing was running")
        else:
            self.echo(f"data kept in {self.state_dir}")
        return stopped

    # ------------------------------------------------------------------ summary
    def summary(self) -> str:
        s = self.settings
        lines = [
            "",
            "The platform is up.",
            f"  Airflow UI   {airflow.base_url(s)}   login {s.airflow_admin_user} / "
            f"{s.airflow_admin_password.get_secret_value()}   (AIRFLOW_ADMIN_* in .env)",
            f"  MLflow       {mlflow.base_url(s)}",
        ]
        if self.process("api").running():
            lines.append(f"  API docs     http://127.0.0.1:{s.api_port}/docs   (create a key: iot api-key create NAME)")
        lines += [
            f"  MongoDB      mongodb://127.0.0.1:{s.mongo_port}/{s.mongo_db}   ({mongo.server_kind()})",
            f"  DBeaver      PostgreSQL host 127.0.0.1 port {s.pg_port} database {s.warehouse_db} "
            f"user {s.analyst_user} password from ANALYST_PASSWORD in .env (read-only: agg, curated)",
            f"  Logs         make logs   (files in {self.logs_dir})",
            "",
            "Next: DAGs start paused; switch them on in the Airflow UI, or run `make demo` for an end-to-end run.",
            "Stop with `make down` (data is kept in " + str(self.state_dir) + ").",
        ]
        return "\n".join(lines)


def format_status(rows: list[ServiceStatus]) -> str:
    out = [f"{'SERVICE':<22} {'PID':>8}  {'HEALTH':<12} URL"]
    for r in rows:
        extra = f"  ({r.note})" if r.note else ""
        out.append(f"{r.name:<22} {r.pid or '-':>8}  {r.state:<12} {r.url}{extra}")
    return "\n".join(out)


def all_healthy(rows: list[ServiceStatus]) -> bool:
    return all(r.healthy for r in rows if r.required)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive_or_raise(proc: ManagedProcess) -> bool:
    if proc.pid() is None:
        tail = ""
        if proc.log_file.exists():
            tail = "\n".join(proc.log_file.read_text(errors="replace").splitlines()[-25:])
        raise _Exited(f"{proc.name} exited during start-up (log: {proc.log_file}):\n{tail}")
    return True


class _Exited(ServiceError):
    pass


def _probe(check: Callable[[Settings], bool], settings: Settings) -> bool:
    try:
        return bool(check(settings))
    except Exception:  # noqa: BLE001 - any failure of a probe means "unhealthy"
        return False
