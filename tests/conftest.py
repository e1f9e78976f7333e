"""Session fixtures: a throw-away PostgreSQL cluster and MongoDB-protocol server on free ports.

They are started once per test run with the same code as `make up` (iot_cli.localstack), and
every component under test finds them through the ordinary settings (environment variables),
so tests exercise real connections, never mocks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from iot_cli.localstack import mongo, postgres
from iot_cli.localstack.airflow_env import airflow_env
from iot_cli.localstack.process import free_port
from iot_core.settings import PROJECT_ROOT, get_settings

SHARED_DIR = Path(os.environ.get("IOT_SHARED_DIR", PROJECT_ROOT.parent / "shared"))

# Decided at import time, before any test module imports airflow (which freezes its config).
# Not tmp_path_factory: pytest's base temp is 0700 root-only, and the PostgreSQL server runs
# as the postgres user when we are root.
TEST_STATE_DIR = Path(tempfile.mkdtemp(prefix="iot-test-"))
os.chmod(TEST_STATE_DIR, 0o755)
os.environ.update({
    "PG_PORT": str(free_port()),
    "MONGO_PORT": str(free_port()),
    "MONGO_DB": "iot_test",
    "AIRFLOW_PORT": str(free_port()),
    "MLFLOW_PORT": str(free_port()),
    "LOCAL_DIR": str(TEST_STATE_DIR),
})
get_settings.cache_clear()
os.environ.update(airflow_env(get_settings(), TEST_STATE_DIR / "airflow"))
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TEST_STATE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def test_state_dir():
    return TEST_STATE_DIR


@pytest.fixture(scope="session")
def settings_env():
    """Settings pointing at the test servers (set in the environment above; env wins over .env)."""
    return get_settings()


@pytest.fixture(scope="session")
def pg_cluster(settings_env, test_state_dir):
    cluster = postgres.cluster_for(settings_env, data_dir=test_state_dir / "pg" / "data")
    cluster.init()
    cluster.start()
    cluster.apply_init_sql(settings_env)
    yield cluster
    import sys

    if "airflow.settings" in sys.modules:  # close Airflow's pool before its server goes away
        sys.modules["airflow.settings"].dispose_orm()
    cluster.stop(mode="fast")


@pytest.fixture(scope="session")
def mongo_server(settings_env, test_state_dir):
    proc = mongo.start(settings_env, test_state_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def services(pg_cluster, mongo_server, settings_env):
    """Both servers up; returns the settings that point at them."""
    return settings_env


@pytest.fixture
def shared_data_dir():
    d = SHARED_DIR / "data"
    if not d.is_dir():
        pytest.skip(f"shared datasets not found at {d} (set IOT_SHARED_DIR)")
    return d


@pytest.fixture(scope="session")
def airflow_db(pg_cluster, settings_env):
    """Airflow's metadata database in the test cluster, migrated once (for ``dag.test()``)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                       env=os.environ.copy())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return settings_env


@pytest.fixture(scope="session")
def platform(services, airflow_db):
    """Everything a DAG test needs: PostgreSQL, MongoDB and Airflow's metadata DB."""
    return services


def load_dag(dag_id: str):
    """The DAG object of ``dags/<dag_id>.py`` (DAG files are named after their dag_id).

    ``dag.test()`` in Airflow 3 runs DAGs from the DAGs folder, so tests load the real files.
    """
    import importlib.util

    path = PROJECT_ROOT / "dags" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"dagfile_{dag_id}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for value in vars(module).values():
        if getattr(value, "dag_id", None) == dag_id and hasattr(value, "test"):
            return value
    raise LookupError(f"{path} defines no DAG {dag_id!r}")


@pytest.fixture(name="load_dag", scope="session")
def load_dag_fixture():
    """The :func:`load_dag` helper as a fixture (test modules cannot import conftest)."""
    return load_dag


@pytest.fixture(scope="module")
def isolated_warehouse(pg_cluster, request):
    """A fresh warehouse database for one test module, built by the same init SQL as the real one.

    The settings (WAREHOUSE_DB) point at it for the module, so every role and connection helper
    works unchanged while other test areas keep their own tables.
    """
    from iot_core.connections import pg_connect

    name = "wh_" + request.module.__name__.rsplit(".", 1)[-1][:40].lower()
    base = get_settings()
    with pg_connect(database="postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
        for role in (base.loader_user, base.transformer_user, base.analyst_user, base.api_user):
            conn.execute(f'grant connect on database "{name}" to "{role}"')
        conn.execute(f'grant temporary on database "{name}" to "{base.transformer_user}"')
    vars_ = postgres.init_sql_variables(base)
    pg_cluster.apply_warehouse_sql(name, vars_)
    old = os.environ.get("WAREHOUSE_DB")
    os.environ["WAREHOUSE_DB"] = name
    get_settings.cache_clear()
    yield get_settings()
    if old is None:
        os.environ.pop("WAREHOUSE_DB", None)
    else:
        os.environ["WAREHOUSE_DB"] = old
    get_settings.cache_clear()
