"""Training data: windows of the last 60 minutes -> the next 15, per device, from ``stage.iaq_minutely``.

Only complete windows are used (75 consecutive minutes present: the stage layer interpolates gaps of
up to 5 minutes and leaves longer gaps out). Train and validation are split at one cut-off time
common to all devices: a training window ends before the cut-off, a validation window starts at or
after it, so no minute is seen by both (no leakage).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from ml.models import HORIZON_MINUTES, INPUT_MINUTES

log = logging.getLogger(__name__)
WINDOW = INPUT_MINUTES + HORIZON_MINUTES


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    cutoff: pd.Timestamp | None
    devices: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # device -> reason it was left out

    def summary(self) -> dict:
        return {"train_windows": len(self.x_train), "val_windows": len(self.x_val),
                "devices": len(self.devices), "devices_skipped": len(self.skipped),
                "cutoff": None if self.cutoff is None else self.cutoff.isoformat()}


def load_iaq_minutely(conn, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    """(time, device_id, iaq) ordered by device and time, from ``stage.iaq_minutely``."""
    sql = "select time, device_id, iaq from stage.iaq_minutely where iaq is not null"
    args: list = []
    if since is not None:
        sql += " and time >= %s"
        args.append(since)
    if until is not None:
        sql += " and time < %s"
        args.append(until)
    sql += " order by device_id, time"
    with conn.cursor() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall()
    df = pd.DataFrame(rows, columns=["time", "device_id", "iaq"])
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df["iaq"] = df["iaq"].astype("float64")
    return df


def device_windows(times: pd.Series, values: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(window start times, windows of shape (n, 75)) for one device's minute series; windows that
    cross a gap are dropped."""
    minute = pd.DatetimeIndex(times).floor("min")
    if len(minute) < WINDOW:
        return np.array([], dtype="datetime64[ns]"), np.empty((0, WINDOW))
    full = pd.date_range(minute.min(), minute.max(), freq="min")
    dense = pd.Series(values, index=minute).groupby(level=0).mean().reindex(full).to_numpy()
    if len(dense) < WINDOW:
        return np.array([], dtype="datetime64[ns]"), np.empty((0, WINDOW))
    all_windows = np.lib.stride_tricks.sliding_window_view(dense, WINDOW)[::stride]
    starts = full[: len(dense) - WINDOW + 1][::stride]
    complete = np.isfinite(all_windows).all(axis=1)
    return starts[complete].to_numpy(), all_windows[complete]


def build_dataset(df: pd.DataFrame, val_fraction: float = 0.2, stride: int = 1,
                  min_windows: int = 60) -> Dataset:
    """Windows of every device with enough data, split by time at one common cut-off."""
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")
    empty = np.empty((0, INPUT_MINUTES)), np.empty((0, HORIZON_MINUTES))
    if df.empty:
        return Dataset(*empty, *empty, cutoff=None)
    t0, t1 = df["time"].min(), df["time"].max()
    cutoff = (t0 + (t1 - t0) * (1 - val_fraction)).floor("min")
    train_x, train_y, val_x, val_y, used, skipped = [], [], [], [], [], {}
    for device_id, part in df.groupby("device_id", sort=True):
        starts, windows = device_windows(part["time"], part["iaq"].to_numpy(), stride)
        if len(windows) < min_windows:
            skipped[device_id] = (f"only {len(windows)} complete {WINDOW}-minute windows "
                                  f"({len(part)} minutes of data), need {min_windows}")
            log.info("training data: device %s left out: %s", device_id, skipped[device_id])
            continue
        starts = pd.DatetimeIndex(starts, tz="UTC")
        last_minute = starts + timedelta(minutes=WINDOW - 1)
        is_train = np.asarray(last_minute < cutoff)
        is_val = np.asarray(starts >= cutoff)
        train_x.append(windows[is_train, :INPUT_MINUTES])
        train_y.append(windows[is_train, INPUT_MINUTES:])
        val_x.append(windows[is_val, :INPUT_MINUTES])
        val_y.append(windows[is_val, INPUT_MINUTES:])
        used.append(device_id)
    if not used:
        return Dataset(*empty, *empty, cutoff=cutoff, skipped=skipped)
    return Dataset(np.concatenate(train_x), np.concatenate(train_y), np.concatenate(val_x),
                   np.concatenate(val_y), cutoff=cutoff, devices=used, skipped=skipped)
