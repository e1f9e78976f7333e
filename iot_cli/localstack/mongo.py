"""The MongoDB-protocol server of local mode: a real ``mongod`` on PATH, else SecantusDB."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from iot_cli.localstack.process import ManagedProcess, port_open, wait_until
from iot_core.settings import Settings


def server_argv(port: int, data_dir: Path) -> list[str]:
    mongod = shutil.which("mongod")
    if mongod:
        return [mongod, "--port", str(port), "--bind_ip", "127.0.0.1", "--dbpath", str(data_dir)]
    return [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(data_dir), "--log-level", "WARNING"]


def server_kind() -> str:
    return "mongod" if shutil.which("mongod") else "SecantusDB"


def healthy(settings: Settings) -> bool:
    from iot_core.connections import mongo_client

    if not port_open(settings.mongo_port, settings.mongo_host):
        return False
    with mongo_client(settings, serverSelectionTimeoutMS=2000) as client:
        return client.admin.command("ping").get("ok") == 1


def start(settings: Settings, state_dir: Path, data_dir: Path | None = None, timeout: float = 60) -> ManagedProcess:
    proc = ManagedProcess("mongo", state_dir)
    if not proc.running():
        data_dir = data_dir or state_dir / "mongo"
        data_dir.mkdir(parents=True, exist_ok=True)
        proc.start(server_argv(settings.mongo_port, data_dir))
    wait_until(lambda: healthy(settings), timeout, f"MongoDB ({server_kind()})", log=proc.log_file)
    return proc
