"""Secrets of the local stack: on no command line, in no file of the state directory but the one
that must hold it, and the state directory the owner's alone.

The package's stack runs with a distinctive random value for every secret (stack_helpers.py), so
a search for each value finds every copy. It runs after the outage test, whose errors are in
the logs too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psutil
import pytest

from iot_cli.localstack.supervision import Supervisor
from iot_core.connections import pg_connect

pytestmark = [pytest.mark.slow, pytest.mark.long]

# file (relative to the state directory) -> the secrets it must hold: SimpleAuthManager reads its
# users' passwords from this file (0600)
ALLOWED = {Path("airflow/simple_auth_manager_passwords.json"): {"AIRFLOW_ADMIN_PASSWORD"}}
# directory -> the secrets its files may hold: the warehouse keeps the pseudonym key in its vault
# schema by design (docs/privacy.md), so PostgreSQL's data and WAL files hold it
ALLOWED_UNDER = {Path("pg/data"): {"PSEUDONYM_SECRET"}}


def _stack_processes(state_dir: Path) -> list[psutil.Process]:
    pid = Supervisor(state_dir).pid()
    assert pid, "the stack's supervisord is not running"
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_no_secret_on_the_command_line_of_any_stack_process(local_stack):
    procs = _stack_processes(local_stack.state_dir)
    assert len(procs) > 10  # supervisord, the databases, Airflow and its workers, MLflow, API, simulator
    found = []
    for proc in procs:
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
        found += [(name, proc.pid, cmdline[:200]) for name, value in local_stack.secrets.items() if value in cmdline]
    assert found == []


def test_no_secret_in_any_file_of_the_state_directory_but_where_it_must_be(local_stack):
    root = local_stack.state_dir
    secrets = {name: value.encode() for name, value in local_stack.secrets.items()}
    found: dict[Path, set[str]] = {}
    files = 0
    for path, _dirs, names in os.walk(root):
        for name in names:
            f = Path(path) / name
            try:
                if not f.is_file() or f.is_symlink():
                    continue
                data = f.read_bytes()
            except OSError:  # gone meanwhile, or a socket
                continue
            files += 1
            relative = f.relative_to(root)
            hits = {n for n, v in secrets.items() if v in data}
            for directory, names in ALLOWED_UNDER.items():
                if relative.is_relative_to(directory):
                    hits -= names
            if hits:
                found[relative] = hits
    assert files > 50
    assert found == {p: names for p, names in ALLOWED.items() if p in found}, found
    assert (root / "logs" / "mlflow.log").exists() and (root / "logs" / "postgres.log").exists()


def test_state_directory_is_the_owners_alone(local_stack):
    root = local_stack.state_dir
    mode = stat.S_IMODE(root.stat().st_mode)
    if os.geteuid() == 0:  # the postgres user's group may only pass through, to reach pg/
        import pwd

        assert (oct(mode), root.stat().st_gid) == (oct(0o710), pwd.getpwnam("postgres").pw_gid)
    else:
        assert mode == 0o700, oct(mode)
    loose = []
    for path, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            p = Path(path) / name
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_IMODE(st.st_mode) & 0o077:
                loose.append((str(p.relative_to(root)), oct(stat.S_IMODE(st.st_mode))))
    assert loose == []


def test_passwords_with_quotes_and_backslashes_reach_the_roles_intact(local_stack):
    # psql got them on its standard input; the analyst's has a quote, a backslash and a percent sign
    s = local_stack.settings
    assert "'" in s.analyst_password.get_secret_value() and "\\" in s.analyst_password.get_secret_value()
    with pg_connect("analyst", settings=s) as conn:
        assert conn.execute("select current_user").fetchone() == (s.analyst_user,)


def test_status_and_up_print_no_secret(local_stack):
    r = local_stack.iot("status")
    for output in (r.stdout + r.stderr, local_stack.first_up.stdout + local_stack.first_up.stderr):
        assert [n for n, v in local_stack.secrets.items() if v in output] == []
