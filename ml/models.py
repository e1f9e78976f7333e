"""The forecast candidates. Every model maps 60 one-minute values to the next 15 and owns its
normalisation, so MLflow serves it with the signature ``(-1, 60) -> (-1, 15)`` and nothing else.

Fit for the metric (issue 15): forecasts are scored by MAE, and in flat stretches persistence is
nearly exact, so a model fitted on squared error loses there (it chases the rare large moves).
Here every learnt model

* predicts a *correction to persistence*: the target is the future value minus the last value,
  divided by one scale fitted on the training windows (the mean absolute one-minute change), so
  a model is independent of a device's level and "no change" is the zero it shrinks towards;
* is fitted with an MAE-aligned loss: Huber (linear model, MLP) or L1 (LightGBM);
* accepts targets with gaps (NaN: a minute that neither had a reading nor could be interpolated)
  and simply leaves them out of its loss.

``damped_trend`` is the classical damped-trend extrapolation (Gardner & McKenzie, 1985): the
slope over the last ``slope_minutes`` continued with damping ``phi`` per minute. It has no learnt
weights; its two parameters are chosen by walk-forward validation like every model's
(ml.tuning).
"""

from __future__ import annotations

import numpy as np

from ml.series import HORIZON_MINUTES, INPUT_MINUTES

try:  # MLflow is only needed to wrap a fitted model; the arithmetic stays importable without it
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object

__all__ = ["CANDIDATES", "HORIZON_MINUTES", "INPUT_MINUTES", "ForecastPyfunc", "Forecaster", "errors_by_horizon"]


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


_LAGS = (1, 2, 3, 5, 10, 15, 20, 30, 45, 59)       # minutes before the last one
_SLOPE_SPANS = (1, 3, 5, 10, 15, 30, 59)


def window_features(xn: np.ndarray) -> np.ndarray:
    """Summaries of windows already made relative to their last value (and scaled): selected lags,
    slopes over several spans, a curvature, and the level, spread and range of the hour."""
    last = xn[:, -1]
    lags = xn[:, [-1 - k for k in _LAGS]]
    slopes = np.column_stack([(last - xn[:, -1 - k]) / k for k in _SLOPE_SPANS])
    curvature = last - 2 * xn[:, -8] + xn[:, -15]
    return np.column_stack([lags, slopes, curvature, xn.mean(axis=1), xn.std(axis=1),
                            xn.max(axis=1), xn.min(axis=1)])


class Forecaster:
    """Base: ``fit(X, Y)`` / ``predict(X)`` on arrays of shape (n, 60) and (n, 15); Y may hold NaN."""

    name = "base"
    #: parameter sets tried by walk-forward validation (ml.tuning); the first is the default
    param_grid: tuple[dict, ...] = ({},)

    def __init__(self, **params):
        self.params = params
        self.scale_ = 1.0

    # normalisation owned by the model
    def _fit_scale(self, x: np.ndarray) -> None:
        self.scale_ = float(np.abs(np.diff(x, axis=1)).mean()) or 1.0

    def _relative(self, x: np.ndarray) -> np.ndarray:
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
        if len(x) == 0:
            raise ValueError("no training windows")
        self._fit_scale(x)
        self._fit(self._relative(x), self._target(x, y))
        return self

    def predict(self, x) -> np.ndarray:
        x = _check_input(x)
        with _one_blas_thread():
            return self._untarget(x, self._predict(self._relative(x)))

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


class DampedTrend(Forecaster):
    """Damped trend: last value + slope * (phi + phi^2 + ... + phi^h), the slope taken over the last
    ``slope_minutes``. phi = 0 is persistence, phi = 1 a straight line."""

    name = "damped_trend"
    param_grid = tuple({"slope_minutes": k, "phi": phi} for k in (10, 5, 20, 30) for phi in (0.9, 0.8, 0.95, 0.98))

    def _fit(self, xn, yn):
        pass

    def _predict(self, xn):
        k = int(self.params.get("slope_minutes", 10))
        phi = float(self.params.get("phi", 0.9))
        slope = -xn[:, -1 - k] / k            # xn is relative to the last value (xn[:, -1] == 0)
        return slope[:, None] * np.cumsum(phi ** np.arange(1, HORIZON_MINUTES + 1))[None, :]


def _huber_irls(a: np.ndarray, b: np.ndarray, alpha: float, iterations: int = 12) -> np.ndarray:
    """Ridge-penalised Huber regression of b on a (last column of a = intercept, not penalised) by
    iteratively reweighted least squares; the Huber threshold is 1.345 robust standard deviations
    of the current residuals (the usual 95 %-efficiency choice)."""
    penalty = alpha * np.eye(a.shape[1])
    penalty[-1, -1] = 0.0
    w = np.ones(len(b))
    beta = np.zeros(a.shape[1])
    for _ in range(iterations):
        aw = a * w[:, None]
        beta = np.linalg.solve(a.T @ aw + penalty, aw.T @ b)
        r = np.abs(b - a @ beta)
        delta = max(1.345 * 1.4826 * float(np.median(r)), 1e-3)
        w = np.where(r <= delta, 1.0, delta / np.maximum(r, 1e-12))
    return beta


class RidgeAR(Forecaster):
    """Linear autoregression on the window's summaries, one per horizon, fitted with Huber loss and
    a ridge penalty (IRLS)."""

    name = "ridge"
    param_grid = ({"alpha": 1.0}, {"alpha": 30.0})

    def _design(self, xn):
        f = (window_features(xn) - self.mean_) / self.std_
        return np.column_stack([f, np.ones(len(f))])

    def _fit(self, xn, yn):
        f = window_features(xn)
        self.mean_, self.std_ = f.mean(axis=0), f.std(axis=0) + 1e-9
        a = self._design(xn)
        alpha = float(self.params.get("alpha", 1.0))
        coef = []
        for h in range(HORIZON_MINUTES):
            ok = np.isfinite(yn[:, h])
            coef.append(_huber_irls(a[ok], yn[ok, h], alpha) if ok.any() else np.zeros(a.shape[1]))
        self.coef_ = np.column_stack(coef)

    def _predict(self, xn):
        return self._design(xn) @ self.coef_


class LightGBMDirect(Forecaster):
    """LightGBM, direct multi-horizon: one booster per horizon on the window summaries, L1 loss."""

    name = "lightgbm"
    param_grid = ({"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 50},
                  {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 7, "min_child_samples": 100})

    def _fit(self, xn, yn):
        import lightgbm as lgb

        feats = window_features(xn)
        self.models_ = []
        for h in range(HORIZON_MINUTES):
            ok = np.isfinite(yn[:, h])
            self.models_.append(lgb.LGBMRegressor(
                objective=self.params.get("objective", "l1"),
                n_estimators=self.params.get("n_estimators", 200),
                learning_rate=self.params.get("learning_rate", 0.05),
                num_leaves=self.params.get("num_leaves", 15),
                min_child_samples=self.params.get("min_child_samples", 50),
                subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                n_jobs=self.params.get("n_jobs", 1), verbose=-1,
                random_state=self.params.get("random_state", 0),
            ).fit(feats[ok], yn[ok, h]))

    def _predict(self, xn):
        feats = window_features(xn)
        return np.column_stack([m.predict(feats) for m in self.models_])


class MLP(Forecaster):
    """A small scikit-learn multi-layer perceptron, all 15 horizons at once. Each horizon's target
    is divided by its own spread, so the near horizons (small changes) weigh as much in the loss
    as the far ones. scikit-learn's MLP has only a squared loss; a Huber fit is obtained by
    reweighting (IRLS): after a first fit, windows with large residuals get weight delta / |r| and
    the network is refitted from where it stopped."""

    name = "mlp"
    param_grid = ({"hidden_layer_sizes": [32, 16], "alpha": 1e-3}, {"hidden_layer_sizes": [64, 32], "alpha": 1e-2})

    def _fit(self, xn, yn):
        from sklearn.neural_network import MLPRegressor

        ok = np.isfinite(yn).all(axis=1)
        f = window_features(xn[ok])
        self.mean_, self.std_ = f.mean(axis=0), f.std(axis=0) + 1e-9
        f = (f - self.mean_) / self.std_
        self.target_scale_ = np.abs(yn[ok]).mean(axis=0) + 1e-9
        target = yn[ok] / self.target_scale_
        self.model_ = MLPRegressor(
            hidden_layer_sizes=tuple(self.params.get("hidden_layer_sizes", (32, 16))),
            alpha=self.params.get("alpha", 1e-3),
            max_iter=self.params.get("max_iter", 200),
            early_stopping=True, random_state=self.params.get("random_state", 0),
        )
        self.model_.fit(f, target)
        for _ in range(int(self.params.get("huber_rounds", 1))):
            r = np.abs(self.model_.predict(f) - target).mean(axis=1)
            delta = max(1.345 * 1.4826 * float(np.median(r)), 1e-3)
            weight = np.where(r <= delta, 1.0, delta / np.maximum(r, 1e-12))
            self.model_.set_params(warm_start=True)
            self.model_.fit(f, target, sample_weight=weight)

    def _predict(self, xn):
        return self.model_.predict((window_features(xn) - self.mean_) / self.std_) * self.target_scale_


CANDIDATES: dict[str, type[Forecaster]] = {
    c.name: c for c in (Persistence, DampedTrend, RidgeAR, LightGBMDirect, MLP)
}


class ForecastPyfunc(PythonModel):
    """MLflow pyfunc wrapper: tensor input (-1, 60) -> ndarray (-1, 15)."""

    def __init__(self, forecaster: Forecaster):
        self.forecaster = forecaster

    def predict(self, context, model_input, params=None):
        values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        return self.forecaster.predict(values)


def errors_by_horizon(y_true: np.ndarray, y_pred: np.ndarray, scored: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(MAE per horizon, RMSE per horizon), each of length 15, over the scored points (default: the
    finite targets)."""
    err = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    mask = np.isfinite(err) if scored is None else (np.asarray(scored, dtype=bool) & np.isfinite(err))
    n = mask.sum(axis=0)
    a = np.where(mask, np.abs(err), 0.0).sum(axis=0)
    s = np.where(mask, err ** 2, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return a / n, np.sqrt(s / n)
