"""The forecast candidates. Every model maps 60 one-minute IAQ values to the next 15 and owns its
normalisation, so MLflow serves it with the signature ``(-1, 60) -> (-1, 15)`` and nothing else.

Normalisation (shared by the learnt models): each window is expressed relative to its last value
(the persistence forecast) and divided by one scale fitted on the training windows. The models
therefore learn a *correction to persistence*, which keeps them level-independent across devices.
"""

from __future__ import annotations

import numpy as np

INPUT_MINUTES = 60
HORIZON_MINUTES = 15

try:  # MLflow is only needed to wrap a fitted model; the arithmetic stays importable without it
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object


def _one_blas_thread():
    """One BLAS/OpenMP thread while fitting and predicting. These matrices are small, and on a busy
    2-core host the default thread pools spin against each other: an MLP fit measured 24 s with
    the default pools and 0.8 s with one thread (docs/forecasting.md). LightGBM's own threads are
    set by its ``n_jobs`` parameter."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _check_input(x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != INPUT_MINUTES:
        raise ValueError(f"expected input of shape (-1, {INPUT_MINUTES}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("input windows contain NaN or infinite values")
    return arr


class Forecaster:
    """Base: ``fit(X, Y)`` / ``predict(X)`` on arrays of shape (n, 60) and (n, 15)."""

    name = "base"

    def __init__(self, **params):
        self.params = params
        self.scale_ = 1.0

    # normalisation owned by the model
    def _fit_scale(self, x: np.ndarray) -> None:
        diffs = np.diff(x, axis=1)
        self.scale_ = float(np.std(diffs)) or 1.0

    def _features(self, x: np.ndarray) -> np.ndarray:
        return (x - x[:, -1:]) / self.scale_

    def _target(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (y - x[:, -1:]) / self.scale_

    def _untarget(self, x: np.ndarray, yn: np.ndarray) -> np.ndarray:
        return x[:, -1:] + yn * self.scale_

    def fit(self, x, y) -> Forecaster:
        with _one_blas_thread():
            return self._fit_checked(x, y)

    def _fit_checked(self, x, y) -> Forecaster:
        x = _check_input(x)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (len(x), HORIZON_MINUTES):
            raise ValueError(f"expected targets of shape ({len(x)}, {HORIZON_MINUTES}), got {y.shape}")
        self._fit_scale(x)
        self._fit(self._features(x), self._target(x, y))
        return self

    def predict(self, x) -> np.ndarray:
        x = _check_input(x)
        with _one_blas_thread():
            return self._untarget(x, self._predict(self._features(x)))

    def _fit(self, xn: np.ndarray, yn: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, xn: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Persistence(Forecaster):
    """The baseline: the last observed value for all 15 minutes."""

    name = "persistence"

    def _fit(self, xn, yn):
        pass

    def _predict(self, xn):
        return np.zeros((len(xn), HORIZON_MINUTES))


class RidgeAR(Forecaster):
    """Linear autoregression: ridge regression of the 15 future deltas on the 60 lags."""

    name = "ridge"

    def _fit(self, xn, yn):
        from sklearn.linear_model import Ridge

        self.model_ = Ridge(alpha=self.params.get("alpha", 1.0)).fit(xn, yn)

    def _predict(self, xn):
        return self.model_.predict(xn)


def _summary_features(xn: np.ndarray) -> np.ndarray:
    """Lags plus a few window summaries that trees cannot build from raw lags themselves."""
    slopes = [(xn[:, -1] - xn[:, -k - 1]) / k for k in (1, 5, 15, 30, 59)]
    return np.column_stack([xn, *slopes, xn.mean(axis=1), xn.std(axis=1)])


class LightGBMDirect(Forecaster):
    """LightGBM, direct multi-horizon: one booster per horizon on lags and window summaries."""

    name = "lightgbm"

    def _fit(self, xn, yn):
        import lightgbm as lgb

        feats = _summary_features(xn)
        self.models_ = [
            lgb.LGBMRegressor(
                n_estimators=self.params.get("n_estimators", 200),
                learning_rate=self.params.get("learning_rate", 0.05),
                num_leaves=self.params.get("num_leaves", 15),
                min_child_samples=self.params.get("min_child_samples", 20),
                subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                n_jobs=self.params.get("n_jobs", 1), verbose=-1,
                random_state=self.params.get("random_state", 0),
            ).fit(feats, yn[:, h])
            for h in range(HORIZON_MINUTES)
        ]

    def _predict(self, xn):
        feats = _summary_features(xn)
        return np.column_stack([m.predict(feats) for m in self.models_])


class MLP(Forecaster):
    """A small scikit-learn multi-layer perceptron, all 15 horizons at once."""

    name = "mlp"

    def _fit(self, xn, yn):
        from sklearn.neural_network import MLPRegressor

        self.model_ = MLPRegressor(
            hidden_layer_sizes=tuple(self.params.get("hidden_layer_sizes", (64, 32))),
            alpha=self.params.get("alpha", 1e-3),
            max_iter=self.params.get("max_iter", 200),
            early_stopping=True, random_state=self.params.get("random_state", 0),
        ).fit(xn, yn)

    def _predict(self, xn):
        return self.model_.predict(xn)


CANDIDATES: dict[str, type[Forecaster]] = {
    c.name: c for c in (Persistence, RidgeAR, LightGBMDirect, MLP)
}


class ForecastPyfunc(PythonModel):
    """MLflow pyfunc wrapper: tensor input (-1, 60) -> ndarray (-1, 15)."""

    def __init__(self, forecaster: Forecaster):
        self.forecaster = forecaster

    def predict(self, context, model_input, params=None):
        values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        return self.forecaster.predict(values)


def errors_by_horizon(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MAE per horizon, RMSE per horizon), each of length 15."""
    err = np.asarray(y_pred) - np.asarray(y_true)
    return np.abs(err).mean(axis=0), np.sqrt((err ** 2).mean(axis=0))
