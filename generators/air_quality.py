"""Indoor air-quality sensors (seed 000 payload): one ``{devid, ts, readings[7]}`` per minute.

Readings order (contracts §1): iaq, temperature °C, humidity %RH, pressure kPa, voc ppm,
co2 ppm, iaq_accuracy 0-3.

Physics, per sensor and *local* day (the room is empty at local midnight, so each day starts
from the ventilated baseline and can be simulated on its own, deterministically):
- occupancy from the room kind (office hours with lunch, meetings, open space), weekends quiet;
- CO2 follows the well-mixed room balance dC/dt = n * G / V - ACH * (C - C_outdoor), with
  G = 0.4 L/min per adult at light office activity and an air-change rate that is higher while the HVAC runs;
- VOC follows the same occupants (and evening cleaning); IAQ is computed from it the way a
  BME680 with Bosch's BSEC reports it (gas resistance against a clean baseline, a humidity score,
  smoothed: ``_gas_sensor``), so it is smooth and follows occupancy like CO2; temperature and
  humidity have daily cycles and warm / moisten with occupancy; pressure drifts with the weather
  (a smooth function of absolute time shared by a site, so it is continuous across days);
- sensor noise, and a few dropouts (missing minutes, after which the IAQ accuracy recovers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.common import (
    MINUTES_PER_DAY,
    SECONDS_PER_DAY,
    rng_for,
)
from generators.devices import Fleet, SensorProfile

READINGS = ("iaq", "temperature", "humidity", "pressure", "voc", "co2", "iaq_accuracy")
CO2_PER_PERSON_L_MIN = 0.4  # light office activity (about 1.5 met)
OUTDOOR_CO2 = 415.0


@dataclass(frozen=True)
class SensorDay:
    """One sensor's local day: reading times (epoch seconds, UTC) and values, plus the truth."""

    epoch_s: np.ndarray  # (n,) int64, only minutes the device reported (dropouts removed)
    readings: np.ndarray  # (n, 7) float64 in READINGS order
    occupancy: np.ndarray  # (n,) people in the room at each reported minute (ground truth, not sent)


def offset_minutes(sensor: SensorProfile) -> int:
    return offset_minutes_from(sensor.utc_offset)


def offset_minutes_from(utc_offset: str) -> int:
    if utc_offset == "Z":
        return 0
    sign = -1 if utc_offset.startswith("-") else 1
    hours, minutes = utc_offset[1:].split(":")
    return sign * (int(hours) * 60 + int(minutes))


def _occupancy(rng: np.random.Generator, sensor: SensorProfile, weekday: int) -> np.ndarray:
    minute = np.arange(MINUTES_PER_DAY)
    people = np.zeros(MINUTES_PER_DAY)
    if weekday >= 5:  # weekend: now and then someone drops by for a few hours
        if rng.uniform() < 0.15:
            start = int(rng.integers(9 * 60, 15 * 60))
            people[start:start + int(rng.integers(60, 240))] = rng.integers(1, 3)
        return people
    if sensor.room_kind == "meeting_room":
        for _ in range(rng.poisson(3.5)):
            start = int(rng.integers(17, 35)) * 30  # half-hour slots 08:30-17:00
            length = int(rng.choice([30, 45, 60, 90]))
            people[start:start + length] += rng.integers(2, sensor.capacity + 1)
        return np.minimum(people, sensor.capacity * 1.5)
    staff = max(1, int(round(sensor.capacity * rng.uniform(0.5, 1.0))))
    arrive = rng.normal(8.75 * 60, 30, staff)
    leave = rng.normal(17.5 * 60, 45, staff)
    lunch_start = rng.normal(12.2 * 60, 20, staff)
    at_lunch = rng.uniform(size=staff) < 0.6
    present = (minute >= arrive[:, None]) & (minute < leave[:, None])
    away = at_lunch[:, None] & (minute >= lunch_start[:, None]) & (minute < lunch_start[:, None] + 50)
    return (present & ~away).sum(axis=0).astype(float)


def _first_order_room(inflow: np.ndarray, decay: np.ndarray, start: float) -> np.ndarray:
    """x[t+1] = (1 - k[t]) x[t] + u[t], solved without a Python loop.

    With P[t] = prod_{s<t}(1 - k[s]): x[t] = P[t] * (x0 + sum_{s<t} u[s] / P[s+1]). All terms are
    positive, so the running sum stays accurate; P over one day stays far above float64's floor.
    """
    keep = 1.0 - decay
    p = np.concatenate([[1.0], np.cumprod(keep)])  # p[t] = prod_{s<t} keep[s]
    acc = np.concatenate([[0.0], np.cumsum(inflow / p[1:])])
    return (p * (start + acc))[:-1]


def _weather_pressure(seed: int, building: str, epoch_s: np.ndarray) -> np.ndarray:
    """Sea-level-ish pressure in kPa: slow weather systems plus the semi-diurnal tide."""
    rng = rng_for(seed, "weather", building)
    days = epoch_s / SECONDS_PER_DAY
    pressure = 101.3 + rng.normal(0, 0.2)
    for period, amplitude in ((2.9, 0.45), (5.3, 0.35), (9.7, 0.3)):
        pressure = pressure + amplitude * np.sin(2 * np.pi * days / period + rng.uniform(0, 2 * np.pi))
    return pressure + 0.08 * np.cos(4 * np.pi * days)


VOC_PER_PERSON = 0.0012     # VOC (ppm, BSEC breath-VOC equivalent) per ppm of CO2 people exhale
VOC_SINK_PER_HOUR = 0.6     # VOCs also adsorb on surfaces: they leave faster than CO2
VOC_REFERENCE_PPM = 1.0     # VOC excess at which the gas resistance has fallen by 2**-0.7
BSEC_SMOOTHING_MINUTES = 5  # BSEC's IAQ output is low-pass filtered
CLEAN_AIR_IAQ = 20          # BSEC's calibrated baseline: clean air reads about 25-50, not 0


def _gas_sensor(rng: np.random.Generator, people: np.ndarray, ach: np.ndarray, volume_m3: float,
                cleaning: np.ndarray, humidity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(VOC ppm, IAQ) the way a BME680 with Bosch's BSEC library reports them.

    VOC follows the same room balance as CO2, driven by the same occupants (bioeffluents) plus the
    evening cleaning, with an extra surface sink. The metal-oxide sensor's gas resistance falls
    with VOC by a power law, R / R_clean = (1 + VOC_excess / VOC_ref) ** -0.7, with sensor noise
    on the resistance (about 1 % a minute, and a slow drift). BSEC compensates the humidity
    dependence of the resistance, scores gas (75 %: R against the clean-air baseline) and
    humidity (25 %: distance from 40 %RH) and reports IAQ = 5 * (100 - score), 0 = excellent,
    ~25-50 in a ventilated empty room, 150-250 in a crowded one, smoothed over a few minutes.
    So IAQ is smooth and follows occupancy like CO2, instead of being white noise."""
    gen = people * CO2_PER_PERSON_L_MIN * 1e-3 / volume_m3 * 1e6 * VOC_PER_PERSON
    voc_excess = _first_order_room(gen, (ach + VOC_SINK_PER_HOUR) / 60.0, start=rng.uniform(0, 0.05))
    voc_excess = voc_excess + cleaning
    background = 0.4 + rng.normal(0, 0.04)
    drift = np.cumsum(rng.normal(0, 0.0015, MINUTES_PER_DAY))       # slow drift of the sensing layer
    resistance = (1 + voc_excess / VOC_REFERENCE_PPM) ** -0.7 * np.exp(drift + rng.normal(0, 0.01, MINUTES_PER_DAY))
    gas_score = 75 * np.minimum(resistance, 1.0)
    humidity_score = 25 * (1 - np.clip(np.abs(humidity - 40) / 40, 0, 1))
    raw = CLEAN_AIR_IAQ + 5 * (100 - gas_score - humidity_score)
    alpha = 1 - np.exp(-1 / BSEC_SMOOTHING_MINUTES)
    iaq = _first_order_room(alpha * raw, np.full(MINUTES_PER_DAY, alpha), start=raw[0])
    voc = (background + voc_excess) * np.exp(rng.normal(0, 0.02, MINUTES_PER_DAY))
    return voc, iaq


def simulate_sensor_day(fleet: Fleet, sensor: SensorProfile, local_day: int) -> SensorDay:
    """Readings of ``sensor`` for its local day ``local_day`` (days since 1970-01-01, local)."""
    rng = rng_for(fleet.seed, "aq", sensor.devid, local_day)
    weekday = (local_day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    minute = np.arange(MINUTES_PER_DAY)
    hours = minute / 60.0
    people = _occupancy(rng, sensor, weekday)

    hvac_on = (weekday < 5) & (hours >= 7) & (hours < 20)
    ach = np.where(hvac_on, rng.uniform(1.0, 1.8), rng.uniform(0.4, 0.7))  # air changes per hour
    window_open = rng.uniform() < 0.3  # someone airs the room for a while
    if window_open:
        opened = int(rng.integers(10 * 60, 16 * 60))
        ach[opened:opened + int(rng.integers(10, 40))] += rng.uniform(3, 6)
    gen_ppm_per_min = people * CO2_PER_PERSON_L_MIN * 1e-3 / sensor.volume_m3 * 1e6
    co2_excess = _first_order_room(gen_ppm_per_min, ach / 60.0, start=rng.uniform(0, 30))
    co2 = OUTDOOR_CO2 + rng.normal(0, 6) + co2_excess

    epoch_s = (local_day * MINUTES_PER_DAY - offset_minutes(sensor) + minute) * 60 + sensor.second_offset
    occupancy_lag = _first_order_room(people * (100 / sensor.volume_m3) * 0.03, np.full(MINUTES_PER_DAY, 0.03), 0.0)  # heat/moisture lag
    daily = np.cos(2 * np.pi * (hours - 15) / 24)  # warmest mid-afternoon
    temperature = 23.6 + rng.normal(0, 0.2) + 0.35 * daily + 0.12 * occupancy_lag
    humidity = 50 + rng.normal(0, 3) - 2.5 * daily + 0.8 * occupancy_lag
    pressure = _weather_pressure(fleet.seed, sensor.building, epoch_s.astype(float))

    cleaning = np.zeros(MINUTES_PER_DAY)
    if weekday < 5 and rng.uniform() < 0.4:  # evening cleaning sprays raise VOC for a while
        at = int(rng.integers(18 * 60, 21 * 60))
        cleaning[at:] = 1.5 * np.exp(-(minute[at:] - at) / 25.0)
    voc, iaq = _gas_sensor(rng_for(fleet.seed, "aq-gas", sensor.devid, local_day), people, ach,
                           sensor.volume_m3, cleaning, humidity)

    noise = rng.normal(size=(6, MINUTES_PER_DAY))
    co2 = np.round(np.clip(co2 + 6 * noise[0], 380, 5000))
    temperature = np.round(temperature + 0.04 * noise[1], 2)
    humidity = np.round(np.clip(humidity + 0.4 * noise[2], 5, 95), 2)
    pressure = np.round(pressure + 0.004 * noise[3], 3)
    voc = np.round(np.clip(voc, 0.1, None), 3)   # noise comes with the gas sensor (_gas_sensor)
    iaq = np.round(np.clip(iaq, 0, 500), 1)

    # dropouts: a few gaps of missing minutes; accuracy reads low while the gas sensor settles after one
    reported = np.ones(MINUTES_PER_DAY, dtype=bool)
    accuracy = np.full(MINUTES_PER_DAY, 3.0)
    for _ in range(rng.poisson(0.8)):
        gap_start = int(rng.integers(0, MINUTES_PER_DAY))
        gap_end = gap_start + int(rng.geometric(1 / 8))
        reported[gap_start:gap_end] = False
        accuracy[gap_end:gap_end + 10] = 1.0
        accuracy[gap_end + 10:gap_end + 30] = 2.0
    accuracy[rng.uniform(size=MINUTES_PER_DAY) < 0.01] = 2.0

    readings = np.column_stack([iaq, temperature, humidity, pressure, voc, co2, accuracy])
    return SensorDay(epoch_s=epoch_s[reported].astype(np.int64), readings=readings[reported],
                     occupancy=people[reported])


def format_ts(epoch_s: np.ndarray, utc_offset: str) -> list[str]:
    """ISO-8601 strings as the device sends them: ``...Z`` or local time with ``+HH:MM``."""
    if utc_offset == "Z":
        return [s + "Z" for s in np.datetime_as_string(epoch_s.astype("datetime64[s]"), unit="s").tolist()]
    shift = offset_minutes_from(utc_offset) * 60
    local = (epoch_s + shift).astype("datetime64[s]")
    return [s + utc_offset for s in np.datetime_as_string(local, unit="s").tolist()]


def sensor_day_documents(fleet: Fleet, sensor: SensorProfile, local_day: int) -> list[dict]:
    day = simulate_sensor_day(fleet, sensor, local_day)
    stamps = format_ts(day.epoch_s, sensor.utc_offset)
    devid = sensor.devid
    return [{"_id": f"aq:{devid}:{t}", "devid": devid, "ts": ts, "readings": r}
            for t, ts, r in zip(day.epoch_s.tolist(), stamps, day.readings.tolist(), strict=True)]
