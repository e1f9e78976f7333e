"""Forecast accuracy frames for the Forecasting page: error weighted by the number of predictions,
so a day or model with few settled forecasts counts for what it is. Vectorised: the page redraws
on every refresh, and a grouped ``apply`` per (day, horizon) cost it a visible fraction of a second."""

from __future__ import annotations

import pandas as pd

PERSISTENCE = "persistence (same points)"


def _weighted(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    weights = frame["predictions"]
    sums = frame[by].assign(predictions=weights, **{c: frame[c] * weights for c in columns})
    grouped = sums.groupby(by, as_index=False, sort=True).sum()
    for c in columns:
        grouped[c] = grouped[c] / grouped["predictions"]
    return grouped


def persistence_by_day(frame: pd.DataFrame) -> pd.DataFrame:
    """Persistence's MAE per day and horizon over the points every model was scored on, as a
    line beside the models' (model_name = PERSISTENCE)."""
    daily = _weighted(frame, ["day", "horizon_minutes"], ["persistence_mae"])
    return daily.rename(columns={"persistence_mae": "mae"}).assign(model_name=PERSISTENCE)[
        ["day", "horizon_minutes", "model_name", "mae"]]


def ratio_by_model(frame: pd.DataFrame) -> pd.DataFrame:
    """MAE over persistence's MAE per model (rows) and horizon (columns) over the whole frame."""
    totals = _weighted(frame, ["model_name", "horizon_minutes"], ["mae", "persistence_mae"])
    totals["mae_ratio"] = totals["mae"] / totals["persistence_mae"]
    return totals.pivot(index="model_name", columns="horizon_minutes", values="mae_ratio")
