"""A project-owned PostgreSQL cluster run from the system's binaries (local mode and tests).

PostgreSQL refuses to run as root; when we are root the server runs as the ``postgres``
system user and its data directory is owned by it.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from iot_cli.localstack.process import ServiceError, wait_until
from iot_core.settings import PROJECT_ROOT, Settings

INIT_SQL_DIR = PROJECT_ROOT / "warehouse" / "init"
SERVER_USER = "postgres"


def find_bin_dir() -> Path | None:
    """Directory of initdb/pg_ctl/psql: $PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: int(re.search(r"/(\d+)/bin", p).group(1)), reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").exists():
            return Path(c)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def ensure_installed() -> Path:
    """The binaries, installing Debian's ``postgresql`` package when they are missing."""
    bin_dir = find_bin_dir()
    if bin_dir:
        return bin_dir
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServiceError("PostgreSQL server binaries not found: install the 'postgresql' package "
                           "(Debian/Ubuntu: sudo apt-get install postgresql) or set PG_BIN")
    print("PostgreSQL binaries missing: installing Debian's postgresql package ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"], check=True, env=env)
    bin_dir = find_bin_dir()
    if not bin_dir:
        raise ServiceError("installed postgresql but still cannot find initdb")
    return bin_dir


def timescaledb_installed(bin_dir: Path) -> bool:
    """True when the TimescaleDB extension files exist for this server version."""
    try:
        sharedir = subprocess.run([str(bin_dir / "pg_config"), "--sharedir"], capture_output=True,
                                  text=True, check=True).stdout.strip()
        pkglibdir = subprocess.run([str(bin_dir / "pg_config"), "--pkglibdir"], capture_output=True,
                                   text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return (Path(sharedir) / "extension" / "timescaledb.control").exists() and bool(
        glob.glob(os.path.join(pkglibdir, "timescaledb*.so")))


def _as_server_user() -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--"]
    return []


def server_account() -> pwd.struct_passwd:
    """The system account the server runs as when we are root."""
    return pwd.getpwnam(SERVER_USER)


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        pw = server_account()
        os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class PostgresCluster:
    data_dir: Path
    port: int
    superuser: str
    superuser_password: str
    bin_dir: Path

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def _run(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*_as_server_user(), *argv], check=True, text=True, capture_output=True, **kw)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb (once): password auth on TCP, no unix socket, TimescaleDB preloaded when installed."""
        if self.initialised():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _chown_to_server_user(self.data_dir)
        os.chmod(self.data_dir, 0o700)
        with tempfile.NamedTemporaryFile("w", delete=False, dir=self.data_dir.parent, suffix=".pw") as f:
            f.write(self.superuser_password + "\n")
            pwfile = Path(f.name)
        try:
            _chown_to_server_user(pwfile)
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                      f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer",
                      "--encoding=UTF8", "--locale=C.UTF-8")
        except subprocess.CalledProcessError as e:
            raise ServiceError(f"initdb failed: {e.stderr or e.stdout}") from e
        finally:
            pwfile.unlink(missing_ok=True)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "max_connections": "200",
            "shared_buffers": "'512MB'",
            "work_mem": "'32MB'",
            "maintenance_work_mem": "'256MB'",
            "synchronous_commit": "off",
            "max_wal_size": "'2GB'",
        }
        if timescaledb_installed(self.bin_dir):
            conf["shared_preload_libraries"] = "'timescaledb'"
            conf["timescaledb.telemetry_level"] = "off"
        with open(self.data_dir / "postgresql.auto.conf", "a") as f:
            f.write("# written by iot_cli.localstack.postgres\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")

    def running(self) -> bool:
        r = subprocess.run([*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"],
                           capture_output=True, text=True)
        return r.returncode == 0

    def ready(self) -> bool:
        r = subprocess.run([str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                           capture_output=True, text=True)
        return r.returncode == 0

    def start(self, timeout: float = 60) -> None:
        if self.running():
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        _chown_to_server_user(self.log_file)
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                      "-o", f"-p {self.port}", "-w", "-t", str(int(timeout)), "start")
        except subprocess.CalledProcessError as e:
            raise ServiceError(f"PostgreSQL did not start: {e.stderr or e.stdout}\n"
                               f"{self.log_file.read_text(errors='replace')[-3000:]}") from e
        wait_until(self.ready, timeout, "PostgreSQL", log=self.log_file)

    def stop(self, mode: str = "fast") -> bool:
        if not self.initialised() or not self.running():
            return False
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        return True

    def foreground_argv(self) -> list[str]:
        """The server in the foreground, as supervisord runs it (no password on it)."""
        return [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]

    def psql_file(self, sql_file: Path, database: str, variables: dict[str, str]) -> str:
        """Run ``sql_file`` with psql variables. Their values (passwords among them) travel on psql's
        standard input as ``\\set`` commands, never on its command line (``ps``) or on disk."""
        argv = [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", self.superuser, "-d", database, "-f", "-"]
        script = "".join(f"\\set {k} {psql_quote(v)}\n" for k, v in variables.items())
        script += f"\\i {psql_quote(str(sql_file))}\n"
        r = subprocess.run(argv, input=script, capture_output=True, text=True,
                           env={**os.environ, "PGPASSWORD": self.superuser_password})
        if r.returncode != 0:
            raise ServiceError(f"{sql_file.name} failed: {r.stderr or r.stdout}")
        return r.stdout

    def apply_init_sql(self, settings: Settings) -> None:
        """Roles, databases, schemas and grants: the same SQL the Docker TimescaleDB runs."""
        variables = init_sql_variables(settings)
        self.psql_file(INIT_SQL_DIR / "01_roles_and_databases.sql", "postgres", variables)
        self.apply_warehouse_sql(settings.warehouse_db, variables)

    def apply_warehouse_sql(self, database: str, variables: dict[str, str]) -> None:
        """The warehouse database's part of the init SQL (every file after 01, in order)."""
        for sql_file in warehouse_sql_files():
            self.psql_file(sql_file, database, {**variables, "warehouse_db": database})


def warehouse_sql_files() -> list[Path]:
    """warehouse/init/02_*.sql, 03_*.sql, ...: run in the warehouse database, in name order."""
    return sorted(p for p in INIT_SQL_DIR.glob("[0-9][0-9]_*.sql") if not p.name.startswith("01_"))


def psql_quote(value: str) -> str:
    """A psql meta-command argument: single-quoted, quotes doubled, backslashes and line breaks escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n").replace("\r", "\\r")
    return "'" + escaped + "'"


def init_sql_variables(s: Settings) -> dict[str, str]:
    return {
        "loader_user": s.loader_user, "loader_password": s.loader_password.get_secret_value(),
        "transformer_user": s.transformer_user, "transformer_password": s.transformer_password.get_secret_value(),
        "analyst_user": s.analyst_user, "analyst_password": s.analyst_password.get_secret_value(),
        "api_user": s.api_user, "api_password": s.api_password.get_secret_value(),
        "airflow_user": s.airflow_db_user, "airflow_password": s.airflow_db_password.get_secret_value(),
        "mlflow_user": s.mlflow_db_user, "mlflow_password": s.mlflow_db_password.get_secret_value(),
        "warehouse_db": s.warehouse_db, "airflow_db": s.airflow_db, "mlflow_db": s.mlflow_db,
        "pseudonym_secret": s.pseudonym_secret.get_secret_value(),
    }


def cluster_for(settings: Settings, data_dir: Path | None = None) -> PostgresCluster:
    return PostgresCluster(
        data_dir=data_dir or settings.local_dir / "pg" / "data",
        port=settings.pg_port,
        superuser=settings.pg_superuser,
        superuser_password=settings.pg_superuser_password.get_secret_value(),
        bin_dir=ensure_installed(),
    )
