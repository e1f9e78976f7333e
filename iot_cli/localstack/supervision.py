"""supervisord for the local stack: it starts each service, restarts one that exits, and rotates logs.

Why supervisord (PyPI ``supervisor``) rather than a loop of our own or circus: it is maintained,
pure Python with no dependencies, restarts with a back-off (each failed start waits one second
longer than the one before, up to ``STACK_START_RETRIES`` in a row), stops whole process groups,
rotates the services' logs, and is controlled over a unix socket (0700, in the state directory),
so two stacks on one host never compete for a control port. circus needs ZeroMQ and tornado and
has had one release in three years.

One ``supervisord`` per state directory. Its configuration (``run/supervisord.conf``, 0600) holds
commands and ports, never a secret: services that need one get it from ``.env`` and the
environment through :mod:`iot_cli.localstack.launch`, which also waits for the databases a
service needs before each start, so a service that died during a database outage waits there
instead of crash-looping. Restarts are counted by :mod:`iot_cli.localstack.restarts`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from iot_cli.localstack.process import ServiceError

# a unix socket path is limited to 107 bytes on Linux
MAX_SOCKET_PATH = 107
LOG_MAX_BYTES = "20MB"
LOG_BACKUPS = 3
RESTART_LISTENER = "restart-counter"


@dataclass(frozen=True)
class Program:
    """One service as supervisord runs it. ``command`` and ``environment`` are written to the
    configuration file, so they must never hold a secret."""

    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    directory: Path | None = None
    stop_signal: str = "TERM"
    stop_wait_seconds: int = 30
    stop_as_group: bool = True
    # a process that exits sooner counts as a failed start (back-off); one that ran longer is
    # restarted at once (its launcher waits for the databases first)
    start_seconds: int = 10


class Supervisor:
    """The supervisord of one state directory: configuration, start, control over its socket."""

    def __init__(self, state_dir: Path, start_retries: int = 20):
        self.state_dir = state_dir
        self.start_retries = start_retries

    # ------------------------------------------------------------------ files
    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "supervisord.pid"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def render(self, programs: Iterable[Program]) -> str:
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ServiceError(f"the state directory path is too long for supervisord's control socket "
                               f"({self.socket}); set LOCAL_DIR to a shorter path in .env")
        lines = [
            "; written by iot_cli.localstack.supervision on every `iot stack up`: edits are overwritten",
            "[unix_http_server]", f"file={_escape(self.socket)}", "chmod=0700", "",
            "[supervisord]", f"logfile={_escape(self.log_file('supervisord'))}",
            f"logfile_maxbytes={LOG_MAX_BYTES}", f"logfile_backups={LOG_BACKUPS}",
            f"pidfile={_escape(self.pid_file)}", f"childlogdir={_escape(self.logs_dir)}",
            # every file a service creates is the owner's alone (logs, data, pid files)
            "umask=077", "identifier=iot-stack", "loglevel=info", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{_escape(self.socket)}", "",
            f"[eventlistener:{RESTART_LISTENER}]",
            f"command={_escape(shlex.join([sys.executable, '-m', 'iot_cli.localstack.restarts', str(self.state_dir)]))}",
            # its stdout is supervisord's event protocol, not worth a log file
            "events=PROCESS_STATE", "autostart=true", "autorestart=true", "stdout_logfile=NONE",
            f"stderr_logfile={_escape(self.log_file(RESTART_LISTENER))}",
            f"stderr_logfile_maxbytes={LOG_MAX_BYTES}", f"stderr_logfile_backups={LOG_BACKUPS}", "",
        ]
        for p in programs:
            lines += [f"[program:{p.name}]", f"command={_escape(shlex.join(p.command))}",
                      "autostart=false", "autorestart=true",
                      f"startsecs={p.start_seconds}", f"startretries={self.start_retries}",
                      f"stopsignal={p.stop_signal}", f"stopwaitsecs={p.stop_wait_seconds}",
                      f"stopasgroup={str(p.stop_as_group).lower()}", "killasgroup=true",
                      "redirect_stderr=true", f"stdout_logfile={_escape(self.log_file(p.name))}",
                      f"stdout_logfile_maxbytes={LOG_MAX_BYTES}", f"stdout_logfile_backups={LOG_BACKUPS}"]
            if p.user:
                lines.append(f"user={p.user}")
            if p.directory:
                lines.append(f"directory={_escape(p.directory)}")
            if p.environment:
                env = ",".join(f'{k}="{_escape(v)}"' for k, v in p.environment.items())
                lines.append(f"environment={env}")
            lines.append("")
        return "\n".join(lines)

    def write_config(self, programs: Iterable[Program]) -> bool:
        """Write the configuration (0600); True when it changed."""
        text = self.render(programs)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        old = self.config_file.read_text() if self.config_file.exists() else None
        if old == text:
            return False
        tmp = self.config_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_file)
        return True

    # ------------------------------------------------------------------ daemon
    def rpc(self, timeout: float = 30):
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        transport.timeout = timeout
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self.rpc().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def start(self, env: dict[str, str] | None = None, timeout: float = 30) -> None:
        """Start supervisord (it daemonizes) with the configuration written before."""
        if self.running():
            return
        self.socket.unlink(missing_ok=True)  # left by a supervisord that was killed
        log = self.log_file("supervisord")
        r = subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(self.config_file)],
                           env={**os.environ, **(env or {})}, capture_output=True, text=True)
        if r.returncode != 0:
            raise ServiceError(f"supervisord did not start: {r.stderr or r.stdout}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.2)
        raise ServiceError(f"supervisord not answering on {self.socket} after {timeout:.0f}s (log: {log})")

    def update(self) -> list[str]:
        """Apply a changed configuration to a running supervisord (``supervisorctl update``):
        programs whose definition changed are stopped and re-added (stopped). Returns their names."""
        rpc = self.rpc()
        added, changed, removed = rpc.reloadConfig()[0]
        for name in (*changed, *removed):
            with contextlib.suppress(xmlrpc.client.Fault):  # not running
                rpc.stopProcessGroup(name, True)
            rpc.removeProcessGroup(name)
        for name in (*changed, *added):
            rpc.addProcessGroup(name)
        return [*added, *changed, *removed]

    def shutdown(self, timeout: float = 60) -> None:
        if not self.running():
            return
        pid = self.pid()
        self.rpc().shutdown()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid is not None and _alive(pid):
            time.sleep(0.2)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    # ------------------------------------------------------------------ programs
    def info(self) -> dict[str, dict]:
        """Program name -> supervisord's process info (``statename``, ``pid``, ...); {} when down."""
        if not self.running():
            return {}
        return {p["name"]: p for p in self.rpc().getAllProcessInfo() if p["name"] != RESTART_LISTENER}

    def state(self, name: str) -> str:
        return self.info().get(name, {}).get("statename", "STOPPED")

    def pid_of(self, name: str) -> int | None:
        p = self.info().get(name)
        return p["pid"] if p and p["statename"] in ("RUNNING", "STARTING") and p["pid"] else None

    def start_program(self, name: str) -> int | None:
        """Ask supervisord to start ``name`` (no wait for health); its pid, once spawned."""
        rpc = self.rpc()
        if rpc.getProcessInfo(name)["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            return self.pid_of(name)
        rpc.startProcess(name, False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = self.pid_of(name)
            if pid:
                return pid
            time.sleep(0.1)
        return None

    def stop_programs(self, names: Iterable[str], timeout: float = 120) -> list[str]:
        """Stop ``names`` at once (each gets its stop signal, SIGKILL after its wait); the ones stopped."""
        names = list(names)
        info = self.info()
        rpc = self.rpc()
        stopping = [n for n in names if info.get(n, {}).get("statename") in ("RUNNING", "STARTING", "BACKOFF")]
        for n in stopping:
            try:
                rpc.stopProcess(n, False)
            except xmlrpc.client.Fault as e:  # NOT_RUNNING: it exited meanwhile
                if "NOT_RUNNING" not in e.faultString:
                    raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info()
            if all(info.get(n, {}).get("statename") not in ("RUNNING", "STARTING", "STOPPING", "BACKOFF")
                   for n in stopping):
                break
            time.sleep(0.3)
        return stopping


def _escape(value: object) -> str:
    """supervisord expands ``%(name)s`` in values: a literal percent sign is written twice."""
    return str(value).replace("%", "%%")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
