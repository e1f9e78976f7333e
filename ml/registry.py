"""MLflow glue: tracking URI from settings, model registration with aliases, cached model loading.

Names: one registered model (``REGISTERED_MODEL``) holds a version per trained candidate; the alias
named after the candidate (``ridge``, ``lightgbm`` ...) points at its newest version and the alias
``champion`` at the version the bandit currently chooses. Aliases, never the deprecated stages.

Cache: loaded models stay in a module-level dict keyed by (model, version) for the life of the
worker process. Airflow's LocalExecutor runs each task in a fresh process, so behind that dict sits
an on-disk copy under ``<local_dir>/ml/model_cache/<model>/<version>``: a new process loads from
disk instead of downloading from MLflow again. A version never changes once registered, so neither
cache needs invalidation.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

EXPERIMENT = "iaq-forecast"
REGISTERED_MODEL = "iaq_forecast"
CHAMPION = "champion"

_loaded: dict[tuple[str, str], object] = {}


def configure(settings: Settings | None = None):
    """Point MLflow at the tracking server from settings; return an ``MlflowClient``."""
    import mlflow
    from mlflow import MlflowClient

    uri = (settings or get_settings()).mlflow_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def set_alias(client, alias: str, version: str, model: str = REGISTERED_MODEL) -> None:
    client.set_registered_model_alias(model, alias, str(version))


def cache_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).local_dir / "ml" / "model_cache"


def load_model(version: str, model: str = REGISTERED_MODEL, settings: Settings | None = None):
    """The pyfunc model of ``model`` version ``version``: from memory, else disk, else MLflow."""
    import mlflow

    key = (model, str(version))
    if key in _loaded:
        return _loaded[key]
    local = cache_dir(settings) / model / str(version)
    if not (local / "MLmodel").exists():
        configure(settings)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=local.parent))
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model}/{version}", dst_path=str(tmp))
            try:
                os.rename(path, local)   # atomic: a concurrent process sees all or nothing
            except OSError:
                if not (local / "MLmodel").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("downloaded %s version %s to %s", model, version, local)
    loaded = mlflow.pyfunc.load_model(str(local))
    _loaded[key] = loaded
    return loaded
