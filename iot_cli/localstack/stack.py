"""The local stack behind `make up/down/status/logs` (DESIGN §2, local mode).

Every service runs under one supervisord per state directory (``settings.local_dir``, ``.local/``
by default; :mod:`iot_cli.localstack.supervision`): PostgreSQL (a project-owned cluster), the
MongoDB-protocol server, the four Airflow 3 components (with ``AIRFLOW_EXECUTOR=celery`` also Redis
and a Celery worker for the ``hot`` and one for the ``batch`` queue), the MLflow tracking server,
and, when their modules exist, the data simulator and the API. A service that exits is restarted with a
back-off, the restart logged and counted (``status`` shows the counts); services that need a
database wait for it before each start (:mod:`iot_cli.localstack.launch`), so a database outage
heals by itself. ``up`` is idempotent and checks every port a service will listen on before it
starts anything; ``down`` stops the clients first, then the databases, then supervisord, and
keeps the data; ``status`` reports health and fails when a service is unhealthy.

The state directory is the owner's alone: 0700 (0710 with the ``postgres`` group when run as
root, so the server, which runs as that user, reaches its data directory), files 0600.

To add a service (Redis, Celery workers, ...): a :class:`Service` in :meth:`Stack.services`, its
command in :mod:`iot_cli.localstack.launch` when it needs a secret or a database, its health in
:meth:`Stack.healthy`, and its place in ``START_ORDER`` / ``STOP_ORDER``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iot_cli.localstack import airflow, celery_mode, mlflow, mongo, postgres, restarts
from iot_cli.localstack.process import ManagedProcess, ServiceError, port_in_use, wait_until
from iot_cli.localstack.supervision import Program, Supervisor
from iot_core.settings import PROJECT_ROOT, Settings
from warehouse import job_health

# optional services: started only when the module they run exists (other teams own them)
GENERATOR_MODULE = "iot_cli.commands.generate"
API_APP_FILE = PROJECT_ROOT / "api" / "app.py"
DASHBOARD_APP_FILE = PROJECT_ROOT / "dashboard" / "app.py"
OPTIONAL_SERVICES = ("generator", "api", "dashboard")

# generous: the build machine's 2 cores are often shared at load average 15 and more
WAIT_SECONDS = {"postgres": 90, "mongo": 90, "redis": 60, "mlflow": 300, "generator": 60, "api": 120, "dashboard": 120}
STATUS_HEALTH_PATIENCE_SECONDS = 30
AIRFLOW_WAIT_SECONDS = 300  # 2 cores shared with databases: the first start imports a lot
# `down`: the clients of the databases together (the scheduler and the Celery workers before the
# api-server, whose execution API their running tasks report to: stopped after it, each task failed
# once), then Redis, MongoDB and PostgreSQL. Programs this stack does not run are passed over.
STOP_ORDER: list[tuple[str, ...]] = [
    ("generator", "api", "dashboard", "mlflow", "airflow-scheduler", "airflow-triggerer", "airflow-dag-processor",
     *celery_mode.WORKER_SERVICES),
    ("airflow-api-server",),
    ("redis",),
    ("mongo",),
    ("postgres",),
]
RUNNING_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF"})


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    healthy: bool
    url: str
    note: str = ""
    required: bool = True
    restarts: int = 0

    @property
    def state(self) -> str:
        if self.healthy:
            return "healthy"
        if self.pid is None:
            return "stopped" if self.required else "not started"
        return "unhealthy"


@dataclass(frozen=True)
class Service:
    """A service of the stack: how supervisord runs it and which ports (setting, port) it listens on."""

    name: str
    program: Program
    ports: tuple[tuple[str, int], ...] = ()
    url: str = ""
    optional: bool = False


@dataclass
class Stack:
    """All services of local mode for one settings object (ports, state directory)."""

    settings: Settings
    echo: Callable[[str], None] = print
    _health_cache: dict = field(default_factory=dict)
    # seconds the api-server's health answer is reused (`status` reads it once for every row)
    _health_max_age: float = 1.0

    # ------------------------------------------------------------------ layout
    @property
    def state_dir(self) -> Path:
        return self.settings.local_dir

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(self.state_dir, start_retries=self.settings.stack_start_retries)

    def process(self, name: str) -> ManagedProcess:
        """A service as the launcher before supervisord knew it (pid files): ``down`` stops those."""
        return ManagedProcess(name, self.state_dir)

    def cluster(self) -> postgres.PostgresCluster:
        return postgres.cluster_for(self.settings, data_dir=self.state_dir / "pg" / "data")

    def log_files(self) -> dict[str, Path]:
        """Service name -> log file (supervisord writes each service's output to logs/<name>.log)."""
        return {p.stem: p for p in sorted(self.logs_dir.glob("*.log"))}

    def secure_state_dir(self) -> None:
        """0700 directories and 0600 files, the state directory itself 0710 with the postgres group
        when we are root (the server runs as that user and must reach pg/)."""
        root = self.state_dir
        root.mkdir(parents=True, exist_ok=True)
        pg_dir = root / "pg"
        for d in (self.logs_dir, root / "run", pg_dir):
            d.mkdir(exist_ok=True)
        for path, dirs, files in os.walk(root):
            if Path(path) == pg_dir:
                dirs.clear()  # PostgreSQL keeps its own data 0700/0600
                continue
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    f = Path(path) / name
                    if not f.is_symlink():
                        f.chmod(0o600)
            for name in dirs:
                with contextlib.suppress(FileNotFoundError):
                    (Path(path) / name).chmod(0o700)
        if os.geteuid() == 0:
            server = postgres.server_account()
            os.chown(root, 0, server.pw_gid)
            root.chmod(0o710)
            os.chown(pg_dir, server.pw_uid, server.pw_gid)
        else:
            root.chmod(0o700)
        pg_dir.chmod(0o700)

    # ------------------------------------------------------------------ services
    def generator_available(self) -> bool:
        return importlib.util.find_spec(GENERATOR_MODULE) is not None

    def api_available(self) -> bool:
        return API_APP_FILE.exists()

    def available(self, name: str) -> bool:
        if name == "generator":
            return self.generator_available()
        if name == "api":
            return self.api_available()
        if name == "dashboard":
            return DASHBOARD_APP_FILE.exists()
        return True

    def services(self, skip: frozenset[str] = frozenset()) -> list[Service]:
        """The services this stack runs, in start order; optional ones only when their module exists."""
        s = self.settings
        cluster = self.cluster()
        # what supervisord passes to every launcher: where the settings are, nothing secret
        base_env = {"LOCAL_DIR": str(self.state_dir)}
        if os.environ.get("IOT_ENV_FILE"):
            base_env["IOT_ENV_FILE"] = os.environ["IOT_ENV_FILE"]

        def launched(name: str, start_seconds: int = 10, stop_wait: int = 30) -> Program:
            return Program(name, [sys.executable, "-m", "iot_cli.localstack.launch", name], environment=base_env,
                           directory=PROJECT_ROOT, start_seconds=start_seconds, stop_wait_seconds=stop_wait)

        pg_user = postgres.SERVER_USER if os.geteuid() == 0 else None
        celery = celery_mode.enabled(s)
        health_port = (("AIRFLOW_SCHEDULER_HEALTH_PORT", s.airflow_scheduler_health_port),) \
            if _airflow_flag("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK") else ()
        services = [
            # SIGINT: PostgreSQL's fast shutdown; the postmaster stops its own children
            Service("postgres", Program("postgres", cluster.foreground_argv(), user=pg_user, stop_signal="INT",
                                        stop_wait_seconds=60, stop_as_group=False, start_seconds=5),
                    (("PG_PORT", s.pg_port),), f"postgresql://127.0.0.1:{s.pg_port}/{s.warehouse_db}"),
            Service("mongo", Program("mongo", mongo.server_argv(s.mongo_port, self.state_dir / "mongo", s,
                                                                auth=mongo.auth_enabled(s)),
                                     stop_wait_seconds=60, start_seconds=5),
                    (("MONGO_PORT", s.mongo_port),), f"mongodb://127.0.0.1:{s.mongo_port}/{s.mongo_db}"),
            *([Service("redis", launched("redis", start_seconds=3), (("REDIS_PORT", s.redis_port),),
                       f"redis://{s.redis_host}:{s.redis_port}/0")] if celery_mode.enabled(s) else []),
            Service("mlflow", launched("mlflow"), (("MLFLOW_PORT", s.mlflow_port),), mlflow.base_url(s)),
            Service("generator", launched("generator"), optional=True),
            Service("api", launched("api"), (("API_PORT", s.api_port),),
                    f"http://127.0.0.1:{s.api_port}/docs", optional=True),
            Service("dashboard", launched("dashboard"), (("DASHBOARD_PORT", s.dashboard_port),),
                    f"http://127.0.0.1:{s.dashboard_port}/", optional=True),
            Service("airflow-api-server", launched("airflow-api-server", stop_wait=60),
                    (("AIRFLOW_PORT", s.airflow_port),), airflow.base_url(s)),
            # the task log server: the scheduler's under the LocalExecutor, the hot worker's under Celery
            Service("airflow-scheduler", launched("airflow-scheduler", stop_wait=60),
                    (*(() if celery else (("AIRFLOW_WORKER_LOG_SERVER_PORT", s.airflow_worker_log_server_port),)),
                     *health_port)),
            Service("airflow-dag-processor", launched("airflow-dag-processor")),
            Service("airflow-triggerer", launched("airflow-triggerer"),
                    (("AIRFLOW_TRIGGER_LOG_SERVER_PORT", s.airflow_trigger_log_server_port),)),
        ]
        if celery:
            # warm shutdown: a worker finishes its running tasks on SIGTERM (up to stop_wait)
            services += [Service(w.service, launched(w.service, stop_wait=120),
                                 (("AIRFLOW_WORKER_LOG_SERVER_PORT", s.airflow_worker_log_server_port),)
                                 if w.serves_logs else (), f"celery://{w.node_name(s)} (queues {w.queues})")
                         for w in celery_mode.WORKERS]
        return [svc for svc in services if not (svc.optional and (svc.name in skip or not self.available(svc.name)))]

    # ------------------------------------------------------------------ health
    def airflow_health(self, fresh: bool = False, patience: float = 0) -> dict | None:
        """The api-server's health answer (cached for a second). ``patience``: seconds to keep asking
        while its process runs but it does not answer (one API worker, busy on a loaded machine:
        `make status` right after a healthy `make up` called all four components unhealthy)."""
        now = time.monotonic()
        cached = self._health_cache.get("airflow")
        if fresh or cached is None or now - cached[0] > self._health_max_age:
            answer = airflow.health(self.settings)
            deadline = now + patience
            while answer is None and time.monotonic() < deadline and \
                    self.supervisor.state("airflow-api-server") == "RUNNING":
                time.sleep(2)
                answer = airflow.health(self.settings)
            self._health_cache["airflow"] = (time.monotonic(), answer)
        return self._health_cache["airflow"][1]

    def api_healthy(self) -> bool:
        import urllib.request

        for path in ("/health",):  # 503 while PostgreSQL or MongoDB is away (api/health.py)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.settings.api_port}{path}", timeout=10) as r:
                    if r.status == 200:
                        return True
            except OSError:
                continue
        return False

    def dashboard_healthy(self) -> bool:
        """Streamlit's own health endpoint (the server is up; pages report a warehouse outage themselves)."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.settings.dashboard_port}/_stcore/health",
                                        timeout=10) as r:
                return r.status == 200
        except OSError:
            return False

    def healthy(self, name: str) -> bool:
        s = self.settings
        if name == "postgres":
            return self.cluster().ready()
        if name == "mongo":
            return _probe(mongo.healthy, s)
        if name == "mlflow":
            return mlflow.healthy(s)
        if name == "redis":
            return celery_mode.redis_healthy(s)
        if name in celery_mode.WORKER_SERVICES:
            return celery_mode.worker_healthy(name, s)
        if name == "api":
            return self.api_healthy()
        if name == "dashboard":
            return self.dashboard_healthy()
        if name in airflow.COMPONENTS:
            return airflow.component_healthy(name, self.airflow_health())
        return True  # the generator: alive is healthy

    def status(self) -> list[ServiceStatus]:
        self._health_max_age = 120.0  # one answer for all rows: a second fetch may time out alone
        try:
            return self._status()
        finally:
            self._health_max_age = 1.0

    def _status(self) -> list[ServiceStatus]:
        info = self.supervisor.info()
        counts = restarts.read_counts(self.state_dir)
        self.airflow_health(fresh=True, patience=STATUS_HEALTH_PATIENCE_SECONDS)
        configured = {svc.name: svc for svc in self.services()}
        rows = []
        celery = ("redis",) if celery_mode.enabled(self.settings) else ()
        for name in ("postgres", "mongo", *celery, *airflow.components(self.settings), "mlflow", *OPTIONAL_SERVICES):
            svc = configured.get(name)
            proc = info.get(name, {})
            state = proc.get("statename", "STOPPED")
            pid = proc.get("pid") or None if state in RUNNING_STATES else None
            notes = []
            if state not in ("RUNNING", "STOPPED") and proc:
                notes.append(f"supervisor: {state}")
            if name in OPTIONAL_SERVICES and not self.available(name):
                notes.append("module not present yet")
            if name in airflow.COMPONENTS and name != "airflow-api-server" and pid and \
                    self.airflow_health() is None:
                notes.append("health unknown: api-server not answering")
            # an optional service counts once `up` configured it (not skipped)
            required = name not in OPTIONAL_SERVICES or bool(proc)
            rows.append(ServiceStatus(name, pid, pid is not None and self.healthy(name), svc.url if svc else "",
                                      ", ".join(notes), required=required,
                                      restarts=int(counts.get(name, {}).get("restarts", 0))))
            if name == "postgres" and rows[-1].healthy:
                # failed TimescaleDB policy runs, recorded in ops (warehouse/job_health.py)
                jobs = _probe_value(job_health.record_job_errors, self.settings)
                rows.append(ServiceStatus("timescaledb-jobs", pid, jobs is not None and jobs.healthy, "",
                                          jobs.summary() if jobs else "job health unknown (warehouse not reachable)",
                                          required=jobs is not None and jobs.timescaledb))
        return rows

    # ------------------------------------------------------------------ up
    def check_ports(self, services: list[Service]) -> None:
        """Every port the given services will listen on must be free: one error naming them all."""
        clashes = [f"  {svc.name}: port {port} ({setting} in .env) is in use{_owner(port)}"
                   for svc in services for setting, port in svc.ports if port_in_use(port)]
        seen: dict[int, str] = {}
        for svc in services:
            for setting, port in svc.ports:
                if port in seen and seen[port] != setting:
                    clashes.append(f"  {svc.name}: port {port} is given twice ({seen[port]} and {setting})")
                seen[port] = setting
        if clashes:
            raise ServiceError("ports taken by processes this stack did not start (another stack on this host?):\n"
                               + "\n".join(clashes)
                               + "\nstop them, or give this stack other ports in .env (or an IOT_ENV_FILE)")

    def up(self, skip: frozenset[str] = frozenset()) -> list[ServiceStatus]:
        os.umask(0o077)
        s = self.settings
        self.secure_state_dir()
        self._stop_legacy_processes()
        services = self.services(skip)
        sup = self.supervisor
        # every port of what is not running yet, before anything starts
        info = sup.info() if sup.running() else {}
        not_running = [svc for svc in services if info.get(svc.name, {}).get("statename") not in RUNNING_STATES]
        self.check_ports(not_running)

        cluster = self.cluster()
        if not cluster.initialised():
            self.echo(f"postgres      initialising a cluster in {cluster.data_dir} ...")
            cluster.init()
        changed = sup.write_config(svc.program for svc in services)
        if sup.running():
            if changed:
                updated = sup.update()
                if updated:
                    self.echo(f"supervisord   configuration changed: {', '.join(updated)} (re)loaded")
                info = sup.info()
                not_running = [svc for svc in services
                               if info.get(svc.name, {}).get("statename") not in RUNNING_STATES]
        else:
            restarts.counts_file(self.state_dir).unlink(missing_ok=True)
            sup.start()
            self.echo(f"supervisord   started (pid {sup.pid()}, socket {sup.socket})")
        not_running_names = {svc.name for svc in not_running}
        for name in OPTIONAL_SERVICES:
            if name in skip:
                self.echo(f"{name:<13} skipped (--skip {name})")
            elif not self.available(name):
                what = GENERATOR_MODULE if name == "generator" else \
                    {"api": API_APP_FILE, "dashboard": DASHBOARD_APP_FILE}[name].relative_to(PROJECT_ROOT)
                self.echo(f"{name:<13} skipped: {what} does not exist yet")

        # PostgreSQL first: Airflow and MLflow keep their metadata in it
        if "postgres" in not_running_names:
            self.echo(f"postgres      starting on port {s.pg_port} (data in {cluster.data_dir}) ...")
            sup.start_program("postgres")
            self._wait("postgres", WAIT_SECONDS["postgres"])
            self.echo(f"postgres      healthy (pid {sup.pid_of('postgres')})")
        else:
            self.echo(f"postgres      already running (pid {sup.pid_of('postgres')}, "
                      f"{'healthy' if cluster.ready() else 'not answering yet'})")
            self._wait("postgres", WAIT_SECONDS["postgres"])
        cluster.apply_init_sql(s)  # idempotent: creates what is missing, re-syncs passwords from .env

        if "mongo" in not_running_names:
            self.echo(f"mongo         starting {mongo.server_kind()} on port {s.mongo_port}"
                      f"{' with authentication' if mongo.auth_enabled(s) else ''} ...")
            mongo.provision_users(s, self.state_dir / "mongo", self.logs_dir / "mongo-provision.log")
            sup.start_program("mongo")
            self._wait("mongo", WAIT_SECONDS["mongo"], check=lambda: _probe(mongo.answers, s))
            mongo.ensure_replica_set(s)
            self._wait("mongo", WAIT_SECONDS["mongo"])
            self.echo(f"mongo         healthy (pid {sup.pid_of('mongo')})")
        else:
            self.echo(f"mongo         already running (pid {sup.pid_of('mongo')}, {mongo.server_kind()})")

        # (service, launch time): Redis, MLflow, the simulator and the API start while Airflow migrates
        started: list[tuple[str, float]] = []
        airflow_services = airflow.components(s)
        for svc in services:
            if svc.name in ("postgres", "mongo") or svc.name in airflow_services:
                continue
            if svc.name in not_running_names:
                pid = sup.start_program(svc.name)
                self.echo(f"{svc.name:<13} started (pid {pid})")
                started.append((svc.name, time.monotonic()))
            else:
                self.echo(f"{svc.name:<13} already running (pid {sup.pid_of(svc.name)})")

        missing = [c for c in airflow_services if c in not_running_names]
        for c in airflow_services:
            if c not in missing:
                self.echo(f"{c:<22} already running (pid {sup.pid_of(c)})")
        if missing:
            self.echo("airflow       dbt manifest for the Cosmos DAGs (dbt parse when models changed) ...")
            airflow.prepare_dbt_manifest(self.logs_dir / "airflow-migrate.log")
            self.echo("airflow       migrating the metadata database (airflow db migrate) ...")
            t0 = time.monotonic()
            airflow.migrate(s, self.logs_dir / "airflow-migrate.log")
            self.echo(f"airflow       metadata database ready ({time.monotonic() - t0:.0f} s)")
            for c in missing:
                pid = sup.start_program(c)
                self.echo(f"{c:<22} started (pid {pid})")
                started.append((c, time.monotonic()))

        for name, launched in started:
            self.echo(f"waiting for   {name} ...")
            timeout = AIRFLOW_WAIT_SECONDS if name in airflow_services else WAIT_SECONDS[name]
            self._wait(name, timeout)
            self.echo(f"{name:<22} healthy ({time.monotonic() - launched:.0f} s after start)")
        return self.status()

    def _wait(self, name: str, timeout: float, check: Callable[[], bool] | None = None) -> None:
        sup = self.supervisor
        check = check or (lambda: self.healthy(name))

        def ready() -> bool:
            state = sup.state(name)
            if state == "FATAL":
                raise ServiceError(f"{name} could not be started: supervisord gave up after repeated "
                                   f"failed starts (log: {sup.log_file(name)}):\n{_tail(sup.log_file(name))}")
            return state in ("RUNNING", "STARTING") and check()

        wait_until(ready, timeout, name, interval=1.0, log=sup.log_file(name))

    def _stop_legacy_processes(self) -> None:
        """Services a launcher without supervisord started (pid files in run/): stopped once, so
        supervisord can take over their ports."""
        legacy = [p for p in sorted((self.state_dir / "run").glob("*.pid")) if p.name != "supervisord.pid"]
        for pid_file in legacy:
            proc = self.process(pid_file.stem)
            pid = proc.pid()
            if proc.stop():
                self.echo(f"{pid_file.stem:<22} stopped (pid {pid}, started without supervisord)")
        cluster = self.cluster()
        if cluster.initialised() and not self.supervisor.running() and cluster.running():
            cluster.stop(mode="fast")
            self.echo("postgres               stopped (started with pg_ctl, without supervisord)")

    # ------------------------------------------------------------------ down
    def down(self) -> list[str]:
        """Stop the clients, then the databases, then supervisord; keep the data."""
        sup = self.supervisor
        stopped: list[str] = []
        if sup.running():
            for group in STOP_ORDER:
                pids = {name: sup.pid_of(name) for name in group}
                for name in sup.stop_programs(group):
                    stopped.append(name)
                    self.echo(f"{name:<22} stopped (pid {pids[name]})")
            sup.shutdown()
            self.echo("supervisord            stopped")
        self._stop_legacy_processes()
        if not stopped:
            self.echo("nothing was running")
        else:
            self.echo(f"data kept in {self.state_dir}")
        return stopped

    # ------------------------------------------------------------------ summary
    def summary(self) -> str:
        s = self.settings
        mongo_login = f"user {s.mongo_user}, password MONGO_PASSWORD in .env" if mongo.auth_enabled(s) else \
            "no authentication (MONGO_USER empty)"
        lines = [
            "",
            "The platform is up.",
            f"  Airflow UI   {airflow.base_url(s)}   login {s.airflow_admin_user}, password "
            f"AIRFLOW_ADMIN_PASSWORD in .env",
            f"  MLflow       {mlflow.base_url(s)}",
        ]
        if self.supervisor.pid_of("api"):
            lines.append(f"  API docs     http://127.0.0.1:{s.api_port}/docs   (create a key: iot api-key create NAME)")
        if self.supervisor.pid_of("dashboard"):
            lines.append(f"  Dashboard    http://127.0.0.1:{s.dashboard_port}/   (no login: local only; reads as "
                         f"{s.analyst_user})")
        lines += [
            f"  MongoDB      mongodb://127.0.0.1:{s.mongo_port}/{s.mongo_db}   ({mongo.server_kind()}; {mongo_login})",
            f"  DBeaver      PostgreSQL host 127.0.0.1 port {s.pg_port} database {s.warehouse_db} "
            f"user {s.analyst_user} password ANALYST_PASSWORD in .env (read-only: stage, agg, curated, ml)",
            f"  Logs         make logs   (files in {self.logs_dir})",
            "",
            "Services that exit are restarted by supervisord; `make status` shows the restarts.",
            "Next: DAGs start paused; switch them on in the Airflow UI, or run `make demo` for an end-to-end run.",
            "Stop with `make down` (data is kept in " + str(self.state_dir) + ").",
        ]
        return "\n".join(lines)


def format_status(rows: list[ServiceStatus]) -> str:
    out = [f"{'SERVICE':<22} {'PID':>8}  {'HEALTH':<12} {'RESTARTS':>8}  URL"]
    for r in rows:
        extra = f"  ({r.note})" if r.note else ""
        out.append(f"{r.name:<22} {r.pid or '-':>8}  {r.state:<12} {r.restarts:>8}  {r.url}{extra}")
    return "\n".join(out)


def all_healthy(rows: list[ServiceStatus]) -> bool:
    return all(r.healthy for r in rows if r.required)


def _airflow_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _owner(port: int) -> str:
    """`` by pid N (command)`` when the listening process can be found."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" by pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline()[:3])[:80]})"
    except Exception:  # noqa: BLE001 - the owner is a hint only
        pass
    return ""


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _probe_value(check: Callable[[Settings], object], settings: Settings):
    try:
        return check(settings)
    except Exception:  # noqa: BLE001 - a failing probe reports "unknown"
        return None


def _probe(check: Callable[[Settings], bool], settings: Settings) -> bool:
    try:
        return bool(check(settings))
    except Exception:  # noqa: BLE001 - any failure of a probe means "unhealthy"
        return False

