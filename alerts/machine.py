"""The state machine of one rule over many devices, vectorised with numpy.

Each rule x device is in one of three phases: inactive, pending (the condition holds, not yet for
the rule's ``for`` duration) or firing. Observations (readings, forecasts, silence checks) arrive
per device in time order; each says whether the condition is *breached*, *clear* (past the
hysteresis band) or neither (inside the band: nothing changes while firing, and a pending alert
is cancelled, because ``for`` means the condition held without a break):

    inactive --breach--> pending --breach held for `for`--> firing --clear held for keep_firing_for--> inactive
               pending --not breached, or a gap longer than max_gap--> inactive (cancelled, never notified)

Every device's k-th new observation is processed in the same numpy step, so a pass costs a few
array operations per *round* (the most observations one device has), not per device.
Times are float seconds since the epoch; NaN means "none".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INACTIVE, PENDING, FIRING = 0, 1, 2
START, FIRE, CANCEL, RESOLVE = "start", "fire", "cancel", "resolve"


@dataclass
class Observations:
    """Observations of one rule, any order. ``device`` indexes the state arrays."""

    device: np.ndarray      # int
    time: np.ndarray        # float seconds: the observation's clock (cursor, durations)
    event_time: np.ndarray  # float seconds: when the condition began or ended (reading kinds: = time)
    breach: np.ndarray      # bool
    clear: np.ndarray       # bool (never together with breach)
    value: np.ndarray       # float
    detail: np.ndarray      # float (kind-specific: forecast lead minutes, anomaly z, ...)

    def __len__(self) -> int:
        return len(self.device)


@dataclass
class States:
    """The persisted machine of every device of the rule (arrays of equal length)."""

    phase: np.ndarray        # int8
    started_at: np.ndarray   # float
    clear_since: np.ndarray  # float
    last_time: np.ndarray    # float (cursor)

    @classmethod
    def empty(cls, n: int) -> States:
        return cls(np.zeros(n, np.int8), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))


@dataclass
class Transitions:
    """What happened, in order per device (rows sorted by device, then sequence)."""

    device: np.ndarray
    what: np.ndarray        # object: START / FIRE / CANCEL / RESOLVE
    at: np.ndarray          # float seconds
    value: np.ndarray
    detail: np.ndarray

    def __len__(self) -> int:
        return len(self.device)


def run(states: States, obs: Observations, for_s: float, keep_firing_s: float = 0.0,
        max_gap_s: float = np.inf) -> Transitions:
    """Advance ``states`` in place over ``obs``; returns the transitions."""
    out: list[tuple] = []
    if len(obs) == 0:
        return _transitions(out)
    order = np.lexsort((obs.time, obs.device))
    dev_sorted = obs.device[order]
    first = np.r_[True, dev_sorted[1:] != dev_sorted[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - group_start
    seq = 0
    for r in range(int(rank.max()) + 1):
        idx = order[rank == r]
        d = obs.device[idx]
        t, et = obs.time[idx], obs.event_time[idx]
        breach, clear = obs.breach[idx], obs.clear[idx]
        value, detail = obs.value[idx], obs.detail[idx]
        phase = states.phase[d].copy()
        started = states.started_at[d].copy()
        clear_since = states.clear_since[d].copy()
        last = states.last_time[d]

        def emit(mask, what, at, _d=d, _value=value, _detail=detail):
            nonlocal seq
            if mask.any():
                out.append((_d[mask], what, np.broadcast_to(at, mask.shape)[mask], _value[mask], _detail[mask], seq))
                seq += 1

        # a pending run is broken by a gap in the observations (the condition was not seen to hold)
        gap = (phase == PENDING) & np.isfinite(last) & (t - last > max_gap_s)
        emit(gap, CANCEL, last)
        phase[gap] = INACTIVE
        # ... or by an observation that does not breach
        cancel = (phase == PENDING) & ~breach
        emit(cancel, CANCEL, et)
        phase[cancel] = INACTIVE
        start = (phase == INACTIVE) & breach
        emit(start, START, et)
        phase[start] = PENDING
        started[start] = et[start]
        fire = (phase == PENDING) & breach & (t - started >= for_s)
        emit(fire, FIRE, t)
        phase[fire] = FIRING
        clear_since[fire] = np.nan
        firing = (phase == FIRING) & ~fire
        clear_since[firing & ~clear] = np.nan
        clearing = firing & clear
        clear_since[clearing] = np.where(np.isnan(clear_since[clearing]), et[clearing], clear_since[clearing])
        resolve = clearing & (t - clear_since >= keep_firing_s)
        emit(resolve, RESOLVE, et if keep_firing_s <= 0 else t)
        phase[resolve] = INACTIVE
        clear_since[resolve] = np.nan
        started[phase == INACTIVE] = np.nan

        states.phase[d] = phase
        states.started_at[d] = started
        states.clear_since[d] = clear_since
        states.last_time[d] = np.fmax(last, t)
    return _transitions(out)


def _transitions(parts: list[tuple]) -> Transitions:
    if not parts:
        return Transitions(np.empty(0, int), np.empty(0, object), np.empty(0), np.empty(0), np.empty(0))
    device = np.concatenate([p[0] for p in parts])
    what = np.concatenate([np.full(len(p[0]), p[1], dtype=object) for p in parts])
    at = np.concatenate([p[2] for p in parts]).astype(float)
    value = np.concatenate([p[3] for p in parts])
    detail = np.concatenate([p[4] for p in parts])
    seq = np.concatenate([np.full(len(p[0]), p[5]) for p in parts])
    order = np.lexsort((seq, device))
    return Transitions(device[order], what[order], at[order], value[order], detail[order])
