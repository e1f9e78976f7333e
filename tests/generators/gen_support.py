"""Constants and shape statistics shared by the generator tests (imported by name: tests are not a package)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
END = START + timedelta(days=7)
WINDOW_MIN = 10


def co2_shape(minute: np.ndarray, co2: np.ndarray, people: np.ndarray) -> dict[str, float]:
    """From a one-minute CO2 series (gaps allowed) with its occupancy:
    - rise_ppm_min: median over occupied spells of at least an hour of the CO2 rise per minute
      over the spell's first 4 hours at most (the real recording's spells last 2.5-4.5 hours),
    - decay_ppm_min: median slope over 10-minute windows empty throughout starting above 500 ppm,
    - daily_range_ppm: median max - min over days with somebody in the room.
    """
    order = np.argsort(minute)
    minute, co2, people = minute[order], co2[order], people[order]
    occupied = people > 0
    starts = np.flatnonzero(occupied & ~np.r_[False, occupied[:-1]])
    ends = np.flatnonzero(occupied & ~np.r_[occupied[1:], False])
    spells = [(s, e) for s, e in zip(starts, ends, strict=True) if minute[e] - minute[s] >= 60]
    rises = []
    for s, e in spells:
        last = min(e, np.searchsorted(minute, minute[s] + 240))
        rises.append((co2[last] - co2[s]) / (minute[last] - minute[s]))

    end = np.searchsorted(minute, minute + WINDOW_MIN)
    idx = np.flatnonzero(end < len(minute))
    idx = idx[minute[end[idx]] == minute[idx] + WINDOW_MIN]
    slope = (co2[end[idx]] - co2[idx]) / WINDOW_MIN
    empty_run = np.array([people[i:end[i] + 1].max() == 0 for i in idx], dtype=bool)
    days = minute // 1440
    ranges = [np.ptp(co2[days == d]) for d in np.unique(days) if people[days == d].max() > 0]
    return {
        "rise_ppm_min": float(np.median(rises)),
        "decay_ppm_min": float(np.median(slope[empty_run & (co2[idx] > 500)])),
        "daily_range_ppm": float(np.median(ranges)),
        "occupied_spells": len(spells),
    }
