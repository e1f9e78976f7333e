"""Weekly training: fit every candidate on the last days of ``stage.iaq_minutely``, log it to MLflow
(parameters, walk-forward validation MAE per horizon and as a ratio to persistence, the model with
its signature), register a version, point the candidate's alias at it and record it as an arm of
the selection.

The windows are built by ml.series (inputs only from readings at or before the issue minute), the
hyper-parameters chosen by walk-forward validation over the span's last weekdays (ml.tuning), and
each candidate is then refitted on the whole span. ``iot backtest`` (ml.backtest) runs this same
training on the production schedule over any series.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings
from ml import registry
from ml.dataset import devices_to_train_on, load_observations, training_windows
from ml.models import CANDIDATES, HORIZON_MINUTES, INPUT_MINUTES, ForecastPyfunc
from ml.schema import ensure_schema
from ml.tuning import DEFAULT_FOLDS, fit_candidates

log = logging.getLogger(__name__)

PIP_REQUIREMENTS = ["mlflow", "numpy", "scikit-learn", "lightgbm", "pandas", "threadpoolctl"]
MIN_TRAINING_WINDOWS = 60


class NotEnoughData(RuntimeError):
    pass


@dataclass
class CandidateResult:
    candidate: str
    version: str
    run_id: str
    params: dict
    val_mae: float | None
    persistence_mae: float | None
    mae_ratio: float | None
    mae_by_horizon: list[float | None]
    fold_days: list[str]
    fit_seconds: float
    tuning_seconds: float


def _signature():
    from mlflow.models import infer_signature

    return infer_signature(np.zeros((1, INPUT_MINUTES)), np.zeros((1, HORIZON_MINUTES)))


def _finite(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def train_candidates(end: datetime | None = None, days: float | None = None, candidates: list[str] | None = None,
                     params: dict[str, dict] | None = None, stride: int = 1, min_windows: int = 60,
                     folds: int = DEFAULT_FOLDS, settings: Settings | None = None) -> list[CandidateResult]:
    """Train, log, register and record every candidate; returns them best first (validation MAE).

    ``days`` defaults to FORECAST_TRAINING_DAYS. ``params`` override entries of each candidate's parameter grid (``{"lightgbm": {"n_estimators":
    50}}`` applies to every set tried); ``stride`` keeps every n-th window per device."""
    settings = settings or get_settings()
    end = end or datetime.now(UTC)
    days = days or settings.forecast_training_days
    names = candidates or list(CANDIDATES)
    unknown = set(names) - set(CANDIDATES)
    if unknown:
        raise ValueError(f"unknown candidates {sorted(unknown)}; known: {sorted(CANDIDATES)}")
    if "persistence" not in names:   # the baseline every figure is compared with, always an arm
        names = ["persistence", *names]

    since = end - timedelta(days=days)
    with pg_connect("transformer", settings=settings) as conn:
        ensure_schema(conn)
        sample, fleet = devices_to_train_on(conn, since, end, settings.forecast_max_train_windows)
        observations = load_observations(conn, since=since, until=end, devices=sample)
    if sample is not None:
        log.info("training on %d of %d devices (drawn at random: their windows already exceed twice "
                 "FORECAST_MAX_TRAIN_WINDOWS)", len(sample), fleet)
    w, skipped = training_windows(observations, settings.forecast_max_gap_minutes, min_windows, stride)
    log.info("training data from %s to %s: %d windows of %d devices, %d devices left out", since, end, len(w),
             len(observations) - len(skipped), len(skipped))
    for device, reason in skipped.items():
        log.warning("device %s left out of training: %s", device, reason)
    if len(w) < MIN_TRAINING_WINDOWS:
        raise NotEnoughData(f"only {len(w)} complete windows in the {days:g} days before {end:%Y-%m-%d %H:%M} "
                            f"({sum(len(m) for m, _ in observations.values())} minutes with readings, "
                            f"{len(skipped)} devices left out), need {MIN_TRAINING_WINDOWS}")

    fitted = fit_candidates(w, names, settings.training_timezone, params, folds,
                            settings.forecast_max_train_windows, progress=log.info)

    import mlflow

    client = registry.configure(settings)
    mlflow.set_experiment(registry.EXPERIMENT)
    signature = _signature()
    summary = {"windows": len(w), "devices": len(observations) - len(skipped), "devices_skipped": len(skipped),
               "devices_with_readings": fleet,
               "data_since": since.isoformat(), "data_until": end.isoformat()}
    results: list[CandidateResult] = []
    for name in names:
        f = fitted[name]
        t = f.tuned
        mae_h, pers_h = t.mae_by_horizon, t.persistence_mae_by_horizon
        with mlflow.start_run(run_name=f"{name}-{end:%Y%m%dT%H%M}") as run:
            mlflow.log_params({f"model.{k}": v for k, v in t.params.items()})
            mlflow.log_params({"candidate": name, "days": days, "stride": stride, "min_windows": min_windows,
                               "folds": folds, "fold_days": ",".join(t.fold_days) or "none",
                               "timezone": settings.training_timezone, **summary})
            metrics = {"fit_seconds": f.fit_seconds, "tuning_seconds": t.seconds}
            if t.points.sum():
                metrics.update({"mae": t.mae, "persistence_mae": t.persistence_mae, "mae_ratio": t.mae_ratio})
                for h in range(HORIZON_MINUTES):
                    if t.points[h]:
                        metrics[f"mae_h{h + 1:02d}"] = float(mae_h[h])
                        if pers_h[h] > 0:
                            metrics[f"mae_ratio_h{h + 1:02d}"] = float(mae_h[h] / pers_h[h])
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
            mlflow.log_dict({"tried": t.tried, "chosen": t.params}, "tuning.json")
            info = mlflow.pyfunc.log_model(
                name=name, python_model=ForecastPyfunc(f.model), signature=signature,
                registered_model_name=registry.REGISTERED_MODEL, pip_requirements=PIP_REQUIREMENTS)
        version = str(info.registered_model_version)
        registry.set_alias(client, name, version)
        client.set_model_version_tag(registry.REGISTERED_MODEL, version, "candidate", name)
        results.append(CandidateResult(
            name, version, run.info.run_id, t.params, _finite(t.mae) if t.points.sum() else None,
            _finite(t.persistence_mae) if t.points.sum() else None, _finite(t.mae_ratio) if t.points.sum() else None,
            [_finite(v) for v in mae_h], t.fold_days, f.fit_seconds, t.seconds))
        log.info("%s: version %s, params %s, validation MAE ratio %s", name, version, t.params,
                 results[-1].mae_ratio)

    with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
        cur.execute("update ml.model_candidates set is_current = false "
                    "where registered_model = %s and candidate = any(%s)", (registry.REGISTERED_MODEL, names))
        for r in results:
            cur.execute(
                "insert into ml.model_candidates (registered_model, model_version, candidate, run_id, val_mae,"
                " persistence_mae, mae_ratio, mae_by_horizon, train_windows, params, fold_days, is_current)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true)"
                " on conflict (registered_model, model_version) do update set is_current = true",
                (registry.REGISTERED_MODEL, r.version, r.candidate, r.run_id, r.val_mae, r.persistence_mae,
                 r.mae_ratio, json.dumps(r.mae_by_horizon), len(w), json.dumps(r.params), r.fold_days))
    return sorted(results, key=lambda r: (r.mae_ratio is None, r.mae_ratio or 0.0, r.candidate))
