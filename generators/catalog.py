"""What the simulators produce, per collection: the windows (device, day) a time range needs,
the documents of one window (bad documents included), and when each document is sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from generators import air_quality, wearables
from generators.bad_data import corrupt
from generators.common import EPOCH, days_covering, epoch_seconds, to_utc
from generators.devices import Fleet

MEASUREMENTS = ("air_quality", "heart_rates", "steps", "sleeps")


@dataclass(frozen=True)
class Window:
    """One device's day: the unit of generation (and of determinism)."""

    collection: str
    device_id: str
    day: int  # UTC day for wearables, the device's local day for air quality
    make: Callable[[], list[dict]]


# how long after its key time (the epoch in the _id) a document is sent by the device
SEND_DELAY_S = {"air_quality": 0, "heart_rates": wearables.HEART_RATE_BUCKET_S,
                "steps": wearables.STEP_BUCKET_S, "sleeps": wearables.STEP_BUCKET_S}


def key_epoch(doc: dict) -> int:
    """The key time of a generated measurement document (epoch seconds, from its ``_id``)."""
    return int(doc["_id"].rsplit(":", 1)[1])


def windows(fleet: Fleet, collection: str, start: datetime, end: datetime,
            bad_rate: float = 0.0) -> Iterator[Window]:
    """The windows whose documents may have a key time in ``[start, end)``, day by day."""
    start, end = to_utc(start), to_utc(end)
    if collection == "air_quality":
        per_day: dict[int, list[Window]] = {}
        for sensor in fleet.sensors:
            shift = timedelta(minutes=air_quality.offset_minutes(sensor))
            for day in days_covering(start + shift, end + shift):
                per_day.setdefault(day, []).append(Window(
                    collection, sensor.devid, day,
                    _maker(lambda s=sensor, d=day: air_quality.sensor_day_documents(fleet, s, d),
                           collection, bad_rate, fleet.seed, sensor.devid, day)))
        for day in sorted(per_day):
            yield from per_day[day]
        return
    make_day = wearables.DAY_DOCUMENTS[collection]
    for day in days_covering(start, end):
        for user in fleet.users:
            device = user.phone_id if collection == "steps" else user.watch_id
            yield Window(collection, device, day,
                         _maker(lambda u=user, d=day: make_day(fleet, u, d), collection, bad_rate,
                                fleet.seed, device, day))


def _maker(clean: Callable[[], list[dict]], collection: str, bad_rate: float, seed: int,
           device: str, day: int) -> Callable[[], list[dict]]:
    return lambda: corrupt(clean(), collection, bad_rate, seed, device, day)


def documents(fleet: Fleet, collection: str, start: datetime, end: datetime, bad_rate: float = 0.0) -> list[dict]:
    """All documents of ``collection`` with key time in ``[start, end)`` (pure: no database)."""
    lo, hi = epoch_seconds(to_utc(start)), epoch_seconds(to_utc(end))
    out: list[dict] = []
    for window in windows(fleet, collection, start, end, bad_rate):
        out.extend(d for d in window.make() if lo <= key_epoch(d) < hi)
    return out


def epoch_to_datetime(epoch: int) -> datetime:
    return EPOCH + timedelta(seconds=epoch)
