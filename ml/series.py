"""From readings to model windows: the one preprocessing of training, forecasting and backtests.

A device's readings (any cadence: every minute, every 30 s, every 5-15 minutes) become *observed
minutes* (the mean of the readings in that minute). Between two consecutive observed minutes at
most ``max_gap_minutes`` apart the minutes are filled by linear interpolation; longer gaps stay
missing.

A forecast is issued at an observed minute ``t0`` only. Its input is the 60 minutes ending at
``t0``: every minute of it lies between two observed minutes at or before ``t0``, so no filled-in
minute carries information from after ``t0`` (a window ending at an interpolated minute would: that
minute is computed from the next reading, which lies in the forecast's future). Its targets are
the 15 minutes after ``t0``; they are *scored* only where a reading was observed, and for training
the interpolated minutes serve as labels too (a label may use later readings; an input may not).

Times are integer epoch minutes (UTC) throughout, which keeps the arithmetic in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

INPUT_MINUTES = 60
HORIZON_MINUTES = 15
DEFAULT_MAX_GAP_MINUTES = 30


def epoch_minutes(times) -> np.ndarray:
    """Timezone-aware times (anything pandas parses) -> int64 minutes since 1970-01-01 UTC (floored)."""
    ts = pd.to_datetime(pd.Series(times), utc=True)
    return (ts.astype("int64") // 60_000_000_000).to_numpy(dtype=np.int64)


def minute_to_timestamp(minutes) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(minutes, dtype=np.int64) * 60, unit="s", utc=True)


@dataclass
class DeviceSeries:
    """One device on a dense minute grid from its first to its last observed minute."""

    device_id: str
    start: int                 # epoch minute of index 0
    values: np.ndarray         # (n,) float, NaN where neither observed nor interpolated
    observed: np.ndarray       # (n,) bool, a reading fell in this minute
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES

    @property
    def minutes(self) -> np.ndarray:
        return self.start + np.arange(len(self.values), dtype=np.int64)

    def observations(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.flatnonzero(self.observed)
        return self.start + idx, self.values[idx]

    def until(self, end_minute: int) -> DeviceSeries:
        """The series as it was known before ``end_minute`` (exclusive): readings at or after it
        are dropped and the interpolation redone, so a gap open at the cut stays open."""
        minutes, values = self.observations()
        keep = minutes < end_minute
        return from_observations(self.device_id, minutes[keep], values[keep], self.max_gap_minutes)


def from_observations(device_id: str, minutes: np.ndarray, values: np.ndarray,
                      max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES) -> DeviceSeries:
    """A ``DeviceSeries`` from observed minutes (sorted, unique) and their values."""
    minutes = np.asarray(minutes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if len(minutes) == 0:
        return DeviceSeries(device_id, 0, np.empty(0), np.empty(0, dtype=bool), max_gap_minutes)
    if (np.diff(minutes) <= 0).any():
        raise ValueError("observed minutes must be sorted and unique (one mean per minute)")
    start = int(minutes[0])
    n = int(minutes[-1] - start + 1)
    dense = np.full(n, np.nan)
    observed = np.zeros(n, dtype=bool)
    pos = minutes - start
    dense[pos] = values
    observed[pos] = True
    if len(pos) > 1:
        # linear interpolation between consecutive observations at most max_gap_minutes apart
        grid = np.flatnonzero(~observed)
        right = np.searchsorted(pos, grid, side="left")          # first observation after the minute
        p0, p1 = pos[right - 1], pos[right]
        ok = (p1 - p0) <= max_gap_minutes
        frac = (grid - p0) / (p1 - p0)
        dense[grid[ok]] = (values[right - 1] + (values[right] - values[right - 1]) * frac)[ok]
    return DeviceSeries(device_id, start, dense, observed, max_gap_minutes)


def observations_frame(df: pd.DataFrame, time_column: str = "time", value_column: str = "value",
                       device_column: str | None = "device_id") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Readings -> per device (observed epoch minutes, minute-mean values), sorted. Rows without a
    time or a finite value are not readings and are left out (the caller counts them)."""
    minutes = epoch_minutes(df[time_column])
    values = pd.to_numeric(df[value_column], errors="coerce").to_numpy(dtype=np.float64)
    devices = df[device_column].astype(str).to_numpy() if device_column else np.full(len(df), "series")
    keep = np.isfinite(values)
    frame = pd.DataFrame({"device": devices[keep], "minute": minutes[keep], "value": values[keep]})
    out = {}
    for device, part in frame.groupby("device", sort=True):
        means = part.groupby("minute", sort=True)["value"].mean()
        out[str(device)] = (means.index.to_numpy(dtype=np.int64), means.to_numpy(dtype=np.float64))
    return out


@dataclass
class Windows:
    """Forecast windows of one or more devices, issued at observed minutes."""

    device: np.ndarray         # (n,) device ids
    t0: np.ndarray             # (n,) epoch minute of the newest input minute (an observed minute)
    x: np.ndarray              # (n, 60) inputs, all finite
    y: np.ndarray              # (n, 15) targets: observed or interpolated, NaN where neither
    y_observed: np.ndarray     # (n, 15) bool: target minute had a reading (what is scored)

    def __len__(self) -> int:
        return len(self.t0)

    def take(self, mask) -> Windows:
        return Windows(self.device[mask], self.t0[mask], self.x[mask], self.y[mask], self.y_observed[mask])

    @staticmethod
    def concat(parts: list[Windows]) -> Windows:
        if not parts:
            return Windows(np.empty(0, dtype=object), np.empty(0, dtype=np.int64), np.empty((0, INPUT_MINUTES)),
                           np.empty((0, HORIZON_MINUTES)), np.empty((0, HORIZON_MINUTES), dtype=bool))
        return Windows(np.concatenate([p.device for p in parts]), np.concatenate([p.t0 for p in parts]),
                       np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                       np.concatenate([p.y_observed for p in parts]))


def windows(series: DeviceSeries, issue_from: int | None = None, issue_until: int | None = None,
            stride: int = 1) -> Windows:
    """Every window of ``series`` issued at an observed minute ``t0`` with issue_from <= t0 <
    issue_until whose 60 input minutes are all known. Targets past the series end are NaN."""
    n = len(series.values)
    if n < INPUT_MINUTES:
        return Windows.concat([])
    t0_idx = np.flatnonzero(series.observed)
    t0_idx = t0_idx[t0_idx >= INPUT_MINUTES - 1]
    if issue_from is not None:
        t0_idx = t0_idx[series.start + t0_idx >= issue_from]
    if issue_until is not None:
        t0_idx = t0_idx[series.start + t0_idx < issue_until]
    if stride > 1:
        t0_idx = t0_idx[::stride]
    if len(t0_idx) == 0:
        return Windows.concat([])
    # complete inputs: no NaN among the 60 minutes ending at t0 (a running count of NaNs)
    nan_count = np.concatenate([[0], np.cumsum(~np.isfinite(series.values))])
    complete = (nan_count[t0_idx + 1] - nan_count[t0_idx + 1 - INPUT_MINUTES]) == 0
    t0_idx = t0_idx[complete]
    padded = np.concatenate([series.values, np.full(HORIZON_MINUTES, np.nan)])
    padded_obs = np.concatenate([series.observed, np.zeros(HORIZON_MINUTES, dtype=bool)])
    in_idx = t0_idx[:, None] + np.arange(-INPUT_MINUTES + 1, 1)[None, :]
    out_idx = t0_idx[:, None] + np.arange(1, HORIZON_MINUTES + 1)[None, :]
    return Windows(np.full(len(t0_idx), series.device_id, dtype=object), series.start + t0_idx,
                   padded[in_idx], padded[out_idx], padded_obs[out_idx])


def latest_window(series: DeviceSeries) -> tuple[np.ndarray | None, int | None, str | None]:
    """(input, t0, None) for the newest observed minute of ``series``, or (None, t0, reason)."""
    if not series.observed.any():
        return None, None, "no readings"
    t0_idx = int(np.flatnonzero(series.observed)[-1])
    t0 = series.start + t0_idx
    if t0_idx < INPUT_MINUTES - 1:
        return None, t0, (f"not enough recent data: readings cover only {t0_idx + 1} of the last "
                          f"{INPUT_MINUTES} minutes")
    x = series.values[t0_idx - INPUT_MINUTES + 1: t0_idx + 1]
    missing = int((~np.isfinite(x)).sum())
    if missing:
        return None, t0, (f"not enough recent data: {missing} of the last {INPUT_MINUTES} minutes lie in "
                          f"gaps longer than {series.max_gap_minutes} minutes between readings")
    return x.copy(), t0, None
