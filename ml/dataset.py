"""Readings of ``stage.iaq_minutely`` for the forecasting (docs/contracts.md §3).

Only the observed minutes are read (``is_interpolated = false``): the stage layer fills gaps of at
most 5 minutes for its own consumers, and the forecasting applies its own rule (ml.series) so
that an input never contains a minute interpolated towards a reading from after the forecast's
issue minute, and so that sensors reporting every 5-15 minutes get windows at all.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pandas as pd

from ml.series import INPUT_MINUTES, Windows, epoch_minutes, from_observations, windows

log = logging.getLogger(__name__)


def load_observations(conn, since: datetime | None = None, until: datetime | None = None,
                      devices: list[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{device: (epoch minutes, iaq)}`` of the observed minutes in [since, until), sorted."""
    sql = "select device_id, time, iaq from stage.iaq_minutely where iaq is not null and not is_interpolated"
    args: list = []
    if since is not None:
        sql += " and time >= %s"
        args.append(since)
    if until is not None:
        sql += " and time < %s"
        args.append(until)
    if devices is not None:
        sql += " and device_id = any(%s)"
        args.append(list(devices))
    sql += " order by device_id, time"
    with conn.cursor() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall()
    if not rows:
        return {}
    df = pd.DataFrame(rows, columns=["device_id", "time", "iaq"])
    minutes = epoch_minutes(df["time"])
    values = df["iaq"].to_numpy(dtype=np.float64)
    codes, names = pd.factorize(df["device_id"], sort=False)
    bounds = np.flatnonzero(np.diff(codes)) + 1
    out = {}
    for chunk_minutes, chunk_values, device in zip(np.split(minutes, bounds), np.split(values, bounds), names,
                                                   strict=True):
        out[str(device)] = (chunk_minutes, chunk_values)
    return out


def devices_to_train_on(conn, since: datetime, until: datetime, max_windows: int | None,
                        seed: int = 0) -> tuple[list[str] | None, int]:
    """(devices to read, devices with readings) for a training. A device yields about one window
    per reading, and a fit uses at most ``max_windows``: when the span holds more than twice that
    many readings, devices are drawn at random (seeded: the same ones every run) until it does, so
    a training never reads 14 days of a whole fleet into memory to use 1 % of it. None: all."""
    with conn.cursor() as cur:
        cur.execute("select device_id, count(*) from stage.iaq_minutely where time >= %s and time < %s"
                    " and not is_interpolated and iaq is not null group by device_id order by device_id",
                    (since, until))
        counts = cur.fetchall()
    if not max_windows or sum(n for _, n in counts) <= 2 * max_windows:
        return None, len(counts)
    chosen, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(counts)):
        chosen.append(counts[i][0])
        total += counts[i][1]
        if total >= 2 * max_windows:
            break
    return sorted(chosen), len(counts)


def training_windows(observations: dict[str, tuple[np.ndarray, np.ndarray]], max_gap_minutes: int,
                     min_windows: int = 60, stride: int = 1) -> tuple[Windows, dict[str, str]]:
    """Every complete window of every device with at least ``min_windows`` of them, and the devices
    left out with the reason."""
    parts, skipped = [], {}
    for device, (minutes, values) in sorted(observations.items()):
        w = windows(from_observations(device, minutes, values, max_gap_minutes), stride=stride)
        w = w.take(np.isfinite(w.y).any(axis=1))
        if len(w) < min_windows:
            skipped[device] = (f"only {len(w)} complete windows ({len(minutes)} minutes with readings; a window needs "
                               f"{INPUT_MINUTES} minutes without a gap over {max_gap_minutes} minutes), "
                               f"need {min_windows}")
            continue
        parts.append(w)
    return Windows.concat(parts), skipped
