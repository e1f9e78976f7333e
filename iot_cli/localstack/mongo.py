"""The MongoDB-protocol server of local mode: a real ``mongod`` on PATH, else SecantusDB.

The extract reads change streams (docs/extract.md), which need an oplog: ``mongod`` runs as a
single-node replica set, SecantusDB keeps its own. Either keeps changes for at least
``MONGO_OPLOG_HOURS``: an extract stopped for longer resumes with a snapshot instead.

Authentication (when ``MONGO_USER`` is set): the server of ``iot stack up`` requires SCRAM
(SecantusDB ``--auth``, ``mongod --auth`` with a key file). Users are kept in the server's own data:
``MONGO_ROOT_USER`` (role ``root``) and the application's ``MONGO_USER`` (``readWrite`` on
``MONGO_DB`` only); neither server lets an unauthenticated client create the first user, so they are
created (or their passwords and roles re-synced from ``.env``) by a short run of the server without
``--auth`` on a private port before the real one starts. Test and benchmark servers
(:func:`start`) run without ``--auth`` but with the same users, so clients authenticate alike.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from iot_cli.localstack.process import ManagedProcess, ServiceError, free_port, port_open, wait_until
from iot_core.settings import Settings

REPLICA_SET = "rs0"


def key_file(data_dir: Path) -> Path:
    """mongod's replica-set key (internal authentication), next to its data (0400)."""
    return data_dir.parent / "mongo.key"


def server_argv(port: int, data_dir: Path, settings: Settings | None = None, auth: bool = False,
                replica_set: bool = True) -> list[str]:
    oplog_hours = settings.mongo_oplog_hours if settings else 168.0
    mongod = shutil.which("mongod")
    if mongod:
        argv = [mongod, "--port", str(port), "--bind_ip", "127.0.0.1", "--dbpath", str(data_dir),
                "--oplogMinRetentionHours", str(oplog_hours)]
        if replica_set:
            argv += ["--replSet", REPLICA_SET]
        if auth:
            argv += ["--auth", "--keyFile", str(_ensure_key_file(data_dir))]
        return argv
    argv = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(data_dir), "--log-level", "WARNING",
            "--oplog-retention-seconds", str(int(oplog_hours * 3600)),
            "--oplog-max-entries", str(settings.mongo_oplog_max_entries if settings else 5_000_000)]
    return [*argv, "--auth"] if auth else argv


def _ensure_key_file(data_dir: Path) -> Path:
    path = key_file(data_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as f:
            # mongod takes 6-1024 characters of the base64 alphabet
            f.write(base64.b64encode(secrets.token_bytes(512)).decode())
    return path


def auth_enabled(settings: Settings) -> bool:
    return bool(settings.mongo_user)


def ensure_users(client, settings: Settings) -> None:
    """The root user and the application user (readWrite on MONGO_DB only), created or re-synced
    with the passwords and roles in ``.env``."""
    from pymongo.errors import OperationFailure

    wanted = [(settings.mongo_user, settings.mongo_password.get_secret_value(),
               [{"role": "readWrite", "db": settings.mongo_db}])]
    if settings.mongo_root_user:
        wanted.insert(0, (settings.mongo_root_user, settings.mongo_root_password.get_secret_value(),
                          [{"role": "root", "db": "admin"}]))
    for user, password, roles in wanted:
        if not password:
            raise ServiceError(f"MongoDB user {user!r} has no password: set it in .env")
        try:
            client.admin.command("createUser", user, pwd=password, roles=roles)
        except OperationFailure as exc:
            if exc.code != 51003:  # the user exists: make it match .env
                raise
            client.admin.command("updateUser", user, pwd=password, roles=roles)


def _unauthenticated(port: int):
    from pymongo import MongoClient

    return MongoClient("127.0.0.1", port, directConnection=True, serverSelectionTimeoutMS=5000)


def provision_users(settings: Settings, data_dir: Path, log_file: Path, timeout: float = 90) -> None:
    """Create or re-sync the users in ``data_dir`` with a short run of the server without ``--auth``,
    bound to 127.0.0.1 on a private free port (nothing else connects to it meanwhile)."""
    if not auth_enabled(settings):
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(server_argv(port, data_dir, settings, replica_set=False), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: _ping(port), timeout, "MongoDB (provisioning users)", log=log_file)
        with _unauthenticated(port) as client:
            ensure_users(client, settings)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ping(port: int) -> bool:
    with _unauthenticated(port) as client:
        return client.admin.command("ping").get("ok") == 1


def answers(settings: Settings) -> bool:
    """The server answers ``ping`` (allowed before authentication)."""
    return _ping(settings.mongo_port)


def ensure_replica_set(settings: Settings) -> None:
    """A fresh ``mongod`` replica set is initiated once (SecantusDB needs nothing)."""
    if not shutil.which("mongod"):
        return
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    credentials = {}
    if auth_enabled(settings) and settings.mongo_root_user:
        credentials = {"username": settings.mongo_root_user,
                       "password": settings.mongo_root_password.get_secret_value(), "authSource": "admin"}
    with MongoClient(settings.mongo_host, settings.mongo_port, directConnection=True,
                     serverSelectionTimeoutMS=5000, **credentials) as client:
        try:
            client.admin.command("replSetGetStatus")
        except OperationFailure as exc:
            if exc.code != 94:  # NotYetInitialized
                raise
            client.admin.command("replSetInitiate", {
                "_id": REPLICA_SET, "members": [{"_id": 0, "host": f"127.0.0.1:{settings.mongo_port}"}]})


def server_kind() -> str:
    return "mongod" if shutil.which("mongod") else "SecantusDB"


def healthy(settings: Settings) -> bool:
    from iot_core.connections import mongo_client

    if not port_open(settings.mongo_port, settings.mongo_host):
        return False
    with mongo_client(settings, serverSelectionTimeoutMS=2000) as client:
        return client.admin.command("ping").get("ok") == 1


def start(settings: Settings, state_dir: Path, data_dir: Path | None = None, timeout: float = 60) -> ManagedProcess:
    """A server for tests and benchmarks (no supervisor, no ``--auth``), with the users of
    ``.env`` created, so clients that send credentials authenticate as against the stack's."""
    proc = ManagedProcess("mongo", state_dir)
    if not proc.running():
        data_dir = data_dir or state_dir / "mongo"
        data_dir.mkdir(parents=True, exist_ok=True)
        proc.start(server_argv(settings.mongo_port, data_dir, settings))
    wait_until(lambda: _ping(settings.mongo_port), timeout, f"MongoDB ({server_kind()})", log=proc.log_file)
    ensure_replica_set(settings)
    if auth_enabled(settings):
        with _unauthenticated(settings.mongo_port) as client:
            ensure_users(client, settings)
    wait_until(lambda: healthy(settings), timeout, f"MongoDB ({server_kind()})", log=proc.log_file)
    return proc
