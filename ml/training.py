"""Weekly training: fit every candidate on the last days of ``stage.iaq_minutely``, log it to MLflow
(parameters, MAE and RMSE per horizon and as a ratio to persistence, the model with its signature),
register a version, point the candidate's alias at it and record it as a bandit arm."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings
from ml import registry
from ml.dataset import build_dataset, load_iaq_minutely
from ml.models import CANDIDATES, HORIZON_MINUTES, INPUT_MINUTES, ForecastPyfunc, errors_by_horizon
from ml.schema import ensure_schema

log = logging.getLogger(__name__)

# Sizes for production; tests and the demo pass smaller ones.
DEFAULT_PARAMS: dict[str, dict] = {
    "persistence": {},
    "ridge": {"alpha": 1.0},
    "lightgbm": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15},
    "mlp": {"hidden_layer_sizes": [64, 32], "max_iter": 200, "alpha": 1e-3},
}
PIP_REQUIREMENTS = ["mlflow", "numpy", "scikit-learn", "lightgbm", "pandas"]


class NotEnoughData(RuntimeError):
    pass


@dataclass
class CandidateResult:
    candidate: str
    version: str
    run_id: str
    val_mae: float
    val_rmse: float
    persistence_mae: float
    mae_ratio: float
    mae_by_horizon: list[float]
    fit_seconds: float


def _signature():
    from mlflow.models import infer_signature

    return infer_signature(np.zeros((1, INPUT_MINUTES)), np.zeros((1, HORIZON_MINUTES)))


def train_candidates(end: datetime | None = None, days: float = 7, candidates: list[str] | None = None,
                     params: dict[str, dict] | None = None, stride: int = 1, val_fraction: float = 0.2,
                     min_windows: int = 60, settings: Settings | None = None) -> list[CandidateResult]:
    """Train, log, register and record every candidate; returns them best first (validation MAE)."""
    settings = settings or get_settings()
    end = end or datetime.now(UTC)
    names = candidates or list(CANDIDATES)
    unknown = set(names) - set(CANDIDATES)
    if unknown:
        raise ValueError(f"unknown candidates {sorted(unknown)}; known: {sorted(CANDIDATES)}")
    if "persistence" not in names:   # the baseline every figure is compared with
        names = ["persistence", *names]
    merged = {n: {**DEFAULT_PARAMS.get(n, {}), **(params or {}).get(n, {})} for n in names}

    with pg_connect("transformer", settings=settings) as conn:
        ensure_schema(conn)
        df = load_iaq_minutely(conn, since=end - timedelta(days=days), until=end)
    data = build_dataset(df, val_fraction=val_fraction, stride=stride, min_windows=min_windows)
    log.info("training data from %s to %s: %s", end - timedelta(days=days), end, data.summary())
    for device, reason in data.skipped.items():
        log.warning("device %s left out of training: %s", device, reason)
    if len(data.x_train) == 0 or len(data.x_val) == 0:
        raise NotEnoughData(f"no complete 75-minute windows on both sides of the split in the {days} days "
                            f"before {end:%Y-%m-%d %H:%M} ({len(df)} minutes of data, "
                            f"{len(data.skipped)} devices left out)")

    import mlflow

    client = registry.configure(settings)
    mlflow.set_experiment(registry.EXPERIMENT)
    signature = _signature()
    persistence_mae_h, _ = errors_by_horizon(data.y_val, np.repeat(data.x_val[:, -1:], HORIZON_MINUTES, axis=1))
    results: list[CandidateResult] = []
    for i, name in enumerate(names, 1):
        log.info("[%d/%d] training %s on %d windows", i, len(names), name, len(data.x_train))
        started = time.perf_counter()
        model = CANDIDATES[name](**merged[name]).fit(data.x_train, data.y_train)
        fit_seconds = time.perf_counter() - started
        mae_h, rmse_h = errors_by_horizon(data.y_val, model.predict(data.x_val))
        ratio_h = mae_h / np.where(persistence_mae_h > 0, persistence_mae_h, np.nan)
        with mlflow.start_run(run_name=f"{name}-{end:%Y%m%dT%H%M}") as run:
            mlflow.log_params({f"model.{k}": v for k, v in merged[name].items()})
            mlflow.log_params({"candidate": name, "days": days, "stride": stride, "val_fraction": val_fraction,
                               "min_windows": min_windows, "data_end": end.isoformat(), **data.summary()})
            metrics = {"mae": float(mae_h.mean()), "rmse": float(np.sqrt((rmse_h ** 2).mean())),
                       "persistence_mae": float(persistence_mae_h.mean()),
                       "mae_ratio": float(mae_h.mean() / persistence_mae_h.mean()) if persistence_mae_h.mean() else 1.0,
                       "fit_seconds": fit_seconds}
            for h in range(HORIZON_MINUTES):
                metrics[f"mae_h{h + 1:02d}"] = float(mae_h[h])
                metrics[f"rmse_h{h + 1:02d}"] = float(rmse_h[h])
                metrics[f"mae_ratio_h{h + 1:02d}"] = float(np.nan_to_num(ratio_h[h], nan=1.0))
            mlflow.log_metrics(metrics)
            info = mlflow.pyfunc.log_model(
                name=name, python_model=ForecastPyfunc(model), signature=signature,
                registered_model_name=registry.REGISTERED_MODEL, pip_requirements=PIP_REQUIREMENTS)
        version = str(info.registered_model_version)
        registry.set_alias(client, name, version)
        client.set_model_version_tag(registry.REGISTERED_MODEL, version, "candidate", name)
        results.append(CandidateResult(name, version, run.info.run_id, metrics["mae"], metrics["rmse"],
                                       metrics["persistence_mae"], metrics["mae_ratio"],
                                       [float(v) for v in mae_h], fit_seconds))
        log.info("%s: version %s, validation MAE %.3f (%.3f of persistence)", name, version,
                 metrics["mae"], metrics["mae_ratio"])

    with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
        cur.execute("update ml.model_candidates set is_current = false "
                    "where registered_model = %s and candidate = any(%s)", (registry.REGISTERED_MODEL, names))
        for r in results:
            cur.execute(
                "insert into ml.model_candidates (registered_model, model_version, candidate, run_id, val_mae,"
                " val_rmse, persistence_mae, mae_ratio, mae_by_horizon, train_windows, val_windows, is_current)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true)"
                " on conflict (registered_model, model_version) do update set is_current = true",
                (registry.REGISTERED_MODEL, r.version, r.candidate, r.run_id, r.val_mae, r.val_rmse,
                 r.persistence_mae, r.mae_ratio, json.dumps(r.mae_by_horizon), len(data.x_train), len(data.x_val)))
    return sorted(results, key=lambda r: r.val_mae)
