"""`docker compose up` refuses the committed development secrets unless told it is a development
run, and `python -m iot_cli.dev_secrets generate` makes real ones (iot_cli/dev_secrets.py)."""

from __future__ import annotations

import io
import subprocess
import sys

from cryptography.fernet import Fernet
from dotenv import dotenv_values

from iot_cli import dev_secrets
from iot_core.settings import PROJECT_ROOT


def test_every_setting_declared_secret_is_checked():
    names = dev_secrets.secret_names()
    for expected in ("PG_SUPERUSER_PASSWORD", "LOADER_PASSWORD", "MLFLOW_DB_PASSWORD", "MONGO_PASSWORD",
                     "MONGO_ROOT_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY",
                     "GRAFANA_ADMIN_PASSWORD"):
        assert expected in names


def test_the_committed_env_is_refused_unless_the_development_flag_is_set():
    committed = dev_secrets.committed_values()
    r = subprocess.run([sys.executable, "-m", "iot_cli.dev_secrets", "check"], env={**committed, "PATH": ""},
                       cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    for name in ("AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "PG_SUPERUSER_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert name in r.stderr
    assert "REFUSED" in r.stderr and "generate" in r.stderr
    assert dev_secrets.check({**committed, dev_secrets.ALLOW_FLAG: "true"}) == 0
    # one development value left is enough to refuse; an empty one too
    real = dotenv_values(stream=io.StringIO(dev_secrets.generate()))
    assert dev_secrets.development_secrets_in_use({**real, "LOADER_PASSWORD": committed["LOADER_PASSWORD"]}) \
        == ["LOADER_PASSWORD"]
    assert dev_secrets.development_secrets_in_use({**real, "API_PASSWORD": ""}) == ["API_PASSWORD"]


def test_generated_secrets_pass_and_keep_the_rest_of_the_env():
    committed = dev_secrets.committed_values()
    real = dotenv_values(stream=io.StringIO(dev_secrets.generate()))
    assert dev_secrets.check(real) == 0
    Fernet(real["AIRFLOW_FERNET_KEY"].encode())  # a valid key
    assert len(real["AIRFLOW_JWT_SECRET"]) >= 64
    for name in dev_secrets.secret_names():
        assert real[name] and real[name] != committed.get(name)
    assert real["PG_PORT"] == committed["PG_PORT"] and real["MONGO_USER"] == committed["MONGO_USER"]


def test_check_reads_an_env_file(tmp_path):
    env_file = tmp_path / ".env.production"
    env_file.write_text(dev_secrets.generate())
    base = {"PATH": "", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "iot_cli.dev_secrets", "check", str(env_file)], env=base,
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "iot_cli.dev_secrets", "check", str(PROJECT_ROOT / ".env")],
                       env=base, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1 and "AIRFLOW_FERNET_KEY" in r.stderr
