"""Wearables in the Fitbit-like format of seed 001: ``heart_rates`` (4-hour buckets of
``{ts, bpm, confidence}`` samples), ``steps`` (15-minute buckets of per-minute counts) and
``sleeps`` (``{start_ts, end_ts, duration}`` in the 15-minute bucket where the sleep ended).

Each user's day is simulated minute by minute from a daily plan (night sleep with a realistic
onset and length, an occasional nap, commutes on weekdays, short walks, a workout on some days,
the watch off its wrist while charging). The plan of day D depends only on
``(seed, user, D)``, and day D also reads day D-1's plan for the night that runs past midnight,
so any day can be generated on its own. Heart rate and sleep come from the watch, steps from
the phone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.common import (
    MINUTES_PER_DAY,
    SECONDS_PER_DAY,
    ema,
    ms_to_datetimes,
    rng_for,
)
from generators.devices import Fleet, UserProfile

SEDENTARY, WALKING, EXERCISE = 0, 1, 2
HEART_RATE_BUCKET_S = 4 * 3600
STEP_BUCKET_S = 15 * 60
SAMPLE_GRID_S = 5  # the watch samples at most every 5 seconds


@dataclass(frozen=True)
class SleepPlan:
    onset_s: int  # seconds after the day's midnight (UTC) at which the night sleep starts
    duration_s: int
    nap: tuple[int, int] | None  # (start, duration) in seconds after midnight


@dataclass(frozen=True)
class UserDay:
    day: int
    asleep: np.ndarray  # (1440,) bool
    activity: np.ndarray  # (1440,) SEDENTARY / WALKING / EXERCISE
    worn: np.ndarray  # (1440,) watch on the wrist
    steps: np.ndarray  # (1440,) int
    heart_rate: np.ndarray  # (1440,) float, the true per-minute heart rate
    sleeps: list[tuple[int, int]]  # sessions ending this day: (start, end) epoch ms


def sleep_plan(fleet: Fleet, user: UserProfile, day: int) -> SleepPlan:
    rng = rng_for(fleet.seed, "sleep", user.user_id, day)
    weekend_night = (day + 3) % 7 in (4, 5)  # Friday and Saturday nights start later and last longer
    onset = user.bedtime_minute + rng.normal(0, 30) + (50 if weekend_night else 0)
    onset = float(np.clip(onset, 21 * 60, 26 * 60))
    duration = float(np.clip(user.sleep_hours * 60 + rng.normal(0, 35) + (45 if weekend_night else 0), 270, 600))
    nap = None
    if rng.uniform() < 0.12:
        nap = (int(rng.integers(13 * 3600, 16 * 3600 + 1800)), int(rng.integers(20 * 60, 90 * 60)))
    return SleepPlan(onset_s=int(onset * 60) + int(rng.integers(0, 60)), duration_s=int(duration * 60)
                     + int(rng.integers(0, 60)), nap=nap)


def _mark(mask: np.ndarray, start_s: float, end_s: float, value=True) -> None:
    lo, hi = max(0, int(start_s // 60)), min(MINUTES_PER_DAY, int(np.ceil(end_s / 60)))
    if hi > lo:
        mask[lo:hi] = value


def simulate_user_day(fleet: Fleet, user: UserProfile, day: int) -> UserDay:
    """Minute-level truth of one UTC day of ``user``."""
    rng = rng_for(fleet.seed, "wear", user.user_id, day)
    minute = np.arange(MINUTES_PER_DAY)
    hours = minute / 60.0
    weekday = (day + 3) % 7
    day_ms = day * SECONDS_PER_DAY * 1000

    yesterday, today = sleep_plan(fleet, user, day - 1), sleep_plan(fleet, user, day)
    asleep = np.zeros(MINUTES_PER_DAY, dtype=bool)
    night_end_s = yesterday.onset_s - SECONDS_PER_DAY + yesterday.duration_s  # always this morning
    _mark(asleep, yesterday.onset_s - SECONDS_PER_DAY, night_end_s)
    _mark(asleep, today.onset_s, today.onset_s + today.duration_s)
    sleeps = [(day_ms + (yesterday.onset_s - SECONDS_PER_DAY) * 1000, day_ms + night_end_s * 1000)]
    if today.nap:
        _mark(asleep, today.nap[0], today.nap[0] + today.nap[1])
        sleeps.append((day_ms + today.nap[0] * 1000, day_ms + (today.nap[0] + today.nap[1]) * 1000))

    activity = np.full(MINUTES_PER_DAY, SEDENTARY, dtype=np.int8)
    wake_min = night_end_s / 60
    awake_hours = max(1.0, (min(today.onset_s, SECONDS_PER_DAY) - night_end_s) / 3600)
    for _ in range(rng.poisson(user.walk_rate * awake_hours)):  # short walks
        at = rng.uniform(wake_min, wake_min + awake_hours * 60)
        _mark(activity, at * 60, (at + rng.integers(2, 11)) * 60, WALKING)
    if weekday < 5:  # commutes
        at = wake_min + rng.uniform(40, 90)
        _mark(activity, at * 60, (at + rng.integers(10, 26)) * 60, WALKING)
        at = rng.normal(17.6 * 60, 30)
        _mark(activity, at * 60, (at + rng.integers(10, 26)) * 60, WALKING)
    if rng.uniform() < user.exercise_probability:
        at = rng.uniform(max(wake_min + 30, 6.5 * 60), 20 * 60)
        _mark(activity, at * 60, (at + rng.integers(25, 71)) * 60, EXERCISE)
    activity[asleep] = SEDENTARY

    worn = np.ones(MINUTES_PER_DAY, dtype=bool)
    charge_at = wake_min + rng.uniform(10, 120)
    _mark(worn, charge_at * 60, (charge_at + rng.integers(30, 91)) * 60, False)

    walking, exercising = activity == WALKING, activity == EXERCISE
    steps = np.zeros(MINUTES_PER_DAY, dtype=np.int64)
    fidget = (~asleep) & (activity == SEDENTARY) & (rng.uniform(size=MINUTES_PER_DAY) < 0.15)
    steps[fidget] = rng.poisson(6, fidget.sum())
    steps[walking] = np.maximum(0, rng.normal(105, 12, walking.sum())).astype(np.int64)
    steps[exercising] = np.maximum(0, rng.normal(152, 12, exercising.sum())).astype(np.int64)

    rest = user.resting_bpm
    max_bpm = 208 - 0.7 * user.age
    target = np.where(asleep, rest - 7 + 2.5 * np.cos(2 * np.pi * (hours - 1) / 24),
                      rest + 8 + 3 * np.cos(2 * np.pi * (hours - 16) / 24))
    target = np.where(walking, rest + 32, target)
    target = np.where(exercising, rest + 0.8 * (max_bpm - rest), target)
    # the heart follows effort with a lag of a couple of minutes; slow wandering on top
    wander = ema(rng.normal(0, 6, MINUTES_PER_DAY), 0.15)
    heart_rate = ema(target, 0.35) + wander
    return UserDay(day=day, asleep=asleep, activity=activity, worn=worn, steps=steps,
                   heart_rate=heart_rate, sleeps=sleeps)


# ---------------------------------------------------------------- documents
def heart_rate_day_documents(fleet: Fleet, user: UserProfile, day: int) -> list[dict]:
    truth = simulate_user_day(fleet, user, day)
    rng = rng_for(fleet.seed, "hr-samples", user.watch_id, day)
    offsets = np.arange(0, SECONDS_PER_DAY, SAMPLE_GRID_S)
    minute_of = offsets // 60
    keep_p = np.where(truth.asleep, 0.12, np.where(truth.activity == EXERCISE, 0.95,
                      np.where(truth.activity == WALKING, 0.6, 0.3)))
    kept = (rng.uniform(size=offsets.size) < keep_p[minute_of]) & truth.worn[minute_of]
    offsets, minute_of = offsets[kept], minute_of[kept]
    bpm = np.interp(offsets / 60.0, np.arange(MINUTES_PER_DAY) + 0.5, truth.heart_rate)
    bpm = np.clip(np.round(bpm + rng.normal(0, 1.5, offsets.size)), 35, 220).astype(np.int64)
    exercising = truth.activity[minute_of] == EXERCISE
    draw = rng.uniform(size=offsets.size)
    # optical sensors lose confidence during vigorous movement
    confidence = np.where(exercising, np.searchsorted([0.05, 0.2, 0.5], draw),
                          np.searchsorted([0.02, 0.07, 0.25], draw)).astype(np.int64)
    day_s = day * SECONDS_PER_DAY
    stamps = ms_to_datetimes((day_s + offsets) * 1000)
    bucket = offsets // HEART_RATE_BUCKET_S
    bpm_list, conf_list = bpm.tolist(), confidence.tolist()
    docs = []
    bounds = np.searchsorted(bucket, np.arange(SECONDS_PER_DAY // HEART_RATE_BUCKET_S + 1))
    for b in range(SECONDS_PER_DAY // HEART_RATE_BUCKET_S):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue  # watch off the wrist for the whole bucket: the device sends nothing
        start_s = day_s + b * HEART_RATE_BUCKET_S
        created = ms_to_datetimes(np.array([start_s, start_s + HEART_RATE_BUCKET_S]) * 1000)
        docs.append({"_id": f"hr:{user.watch_id}:{start_s}", "device_id": user.watch_id,
                     "created_at": created[0], "ended_at": created[1],
                     "metrics": [{"ts": stamps[i], "bpm": bpm_list[i], "confidence": conf_list[i]}
                                 for i in range(lo, hi)]})
    return docs


def steps_day_documents(fleet: Fleet, user: UserProfile, day: int) -> list[dict]:
    truth = simulate_user_day(fleet, user, day)
    day_s = day * SECONDS_PER_DAY
    stamps = ms_to_datetimes((day_s + np.arange(MINUTES_PER_DAY + 1) * 60) * 1000)
    steps = truth.steps.tolist()
    docs = []
    for b in range(MINUTES_PER_DAY // 15):
        lo = b * 15
        docs.append({"_id": f"st:{user.phone_id}:{day_s + lo * 60}", "device_id": user.phone_id,
                     "created_at": stamps[lo], "ended_at": stamps[lo + 15],
                     "metrics": [{"ts": stamps[m], "steps": steps[m]} for m in range(lo, lo + 15)]})
    return docs


def sleep_day_documents(fleet: Fleet, user: UserProfile, day: int) -> list[dict]:
    truth = simulate_user_day(fleet, user, day)
    by_bucket: dict[int, list[dict]] = {}
    for start_ms, end_ms in truth.sleeps:
        start_dt, end_dt = ms_to_datetimes(np.array([start_ms, end_ms]))
        bucket_s = (end_ms // 1000) // STEP_BUCKET_S * STEP_BUCKET_S
        by_bucket.setdefault(bucket_s, []).append(
            {"start_ts": start_dt, "end_ts": end_dt, "duration": int(end_ms - start_ms)})
    docs = []
    for bucket_s, metrics in sorted(by_bucket.items()):
        created, ended = ms_to_datetimes(np.array([bucket_s, bucket_s + STEP_BUCKET_S]) * 1000)
        docs.append({"_id": f"sl:{user.watch_id}:{bucket_s}", "device_id": user.watch_id,
                     "created_at": created, "ended_at": ended, "metrics": metrics})
    return docs


DAY_DOCUMENTS = {"heart_rates": heart_rate_day_documents, "steps": steps_day_documents,
                 "sleeps": sleep_day_documents}
