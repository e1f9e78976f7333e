"""Fixtures of the forecasting tests: an MLflow backend on the test PostgreSQL. Test data helpers
are in ml_testdata.py (a module with a unique name: tests/ml is not a package, so it cannot shadow
the project's ``ml``)."""

from __future__ import annotations

import os

import pytest

from iot_core.connections import pg_url
from iot_core.settings import get_settings


@pytest.fixture(scope="session")
def mlflow_backend(services, test_state_dir):
    """MLflow tracking and registry on the test cluster's ``mlflow`` database (the same SQL store a
    ``mlflow server`` uses), artifacts in the test state dir. Production code reads the URI from
    settings (MLFLOW_TRACKING_URI), as it does for the real server."""
    import mlflow

    settings = get_settings()
    uri = pg_url("mlflow", settings.mlflow_db, driver="postgresql+psycopg2")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    get_settings.cache_clear()
    from ml import registry

    registry.configure()
    if mlflow.get_experiment_by_name(registry.EXPERIMENT) is None:
        artifacts = test_state_dir / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(registry.EXPERIMENT, artifact_location=artifacts.as_uri())
    yield get_settings()
