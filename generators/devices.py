"""The simulated fleet: users with a watch and a phone, indoor air-quality sensors in rooms,
and the device registry (seed 004's dimensions: kind, owner or location, manufacturer,
install and calibration history).

Identifiers and physiology depend only on the seed; dates in the registry (sign-up, consent,
install) are placed relative to an ``anchor`` day, normally the first simulated day, so that
consent dates fall inside the simulated period ("some agree only from a later date").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from generators.common import hex_id, rng_for, to_utc

SITES = (
    # (building, city, lat, long, UTC offset the devices report, weight)
    ("HQ", "London", 51.5155, -0.0922, "Z"),
    ("Lab", "Sydney", -33.8688, 151.2093, "+11:00"),
)
ROOM_KINDS = ("office", "meeting_room", "open_space")
CONSENT_FIELDS = ("share_with_research_asof", "share_with_public_asof", "share_with_friends_asof")


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    watch_id: str
    phone_id: str
    index: int
    age: int
    gender: str
    height: int
    resting_bpm: float  # heart rate at rest, awake
    bedtime_minute: float  # usual sleep onset, minutes after local midnight (may exceed 1440)
    sleep_hours: float  # usual night length
    exercise_probability: float  # chance of a workout on a given day
    walk_rate: float  # short walks per waking hour


@dataclass(frozen=True)
class SensorProfile:
    devid: str
    index: int
    building: str
    city: str
    lat: float
    long: float
    utc_offset: str  # "Z" or "+HH:MM", as the device writes its timestamps
    floor: int
    room: str
    room_kind: str
    volume_m3: float
    capacity: int
    second_offset: int  # second within each minute at which the device reports


@dataclass(frozen=True)
class Fleet:
    seed: int
    anchor: datetime
    users: list[UserProfile] = field(default_factory=list)
    sensors: list[SensorProfile] = field(default_factory=list)

    @property
    def known_device_ids(self) -> set[str]:
        ids = {s.devid for s in self.sensors}
        for u in self.users:
            ids |= {u.watch_id, u.phone_id}
        return ids


def build_fleet(users: int, sensors: int, seed: int, anchor: datetime) -> Fleet:
    """The fleet of ``users`` wearable owners and ``sensors`` air-quality devices for ``seed``."""
    anchor = to_utc(anchor).replace(hour=0, minute=0, second=0, microsecond=0)
    return Fleet(seed=seed, anchor=anchor,
                 users=[_user(seed, i) for i in range(users)],
                 sensors=[_sensor(seed, i) for i in range(sensors)])


def _user(seed: int, index: int) -> UserProfile:
    rng = rng_for(seed, "user", index)
    gender = str(rng.choice(["female", "male", "other"], p=[0.49, 0.49, 0.02]))
    age = int(rng.integers(18, 86))
    height = int(round(rng.normal(165 if gender == "female" else 178, 7)))
    fitness = rng.uniform(0, 1)
    return UserProfile(
        user_id=f"u-{hex_id(seed, 'user', index)}",
        watch_id=f"w-{hex_id(seed, 'watch', index)}",
        phone_id=f"p-{hex_id(seed, 'phone', index)}",
        index=index, age=age, gender=gender, height=max(140, min(210, height)),
        resting_bpm=float(rng.uniform(58, 74) - 6 * fitness + 0.05 * (age - 40)),
        bedtime_minute=float(rng.normal(23 * 60, 40)),
        sleep_hours=float(rng.uniform(6.3, 8.2)),
        exercise_probability=float(0.25 + 0.6 * fitness),
        walk_rate=float(rng.uniform(0.4, 1.2)),
    )


def _sensor(seed: int, index: int) -> SensorProfile:
    rng = rng_for(seed, "sensor", index)
    # most devices report in UTC ("Z"); every fifth (the second, seventh, ...) is at the Sydney
    # site and sends local time with +11:00
    site = SITES[1] if index % 5 == 1 else SITES[0]
    kind = str(rng.choice(ROOM_KINDS, p=[0.4, 0.35, 0.25]))
    floor = int(rng.integers(0, 6))
    # the air volume sets how fast people raise CO2: 400 ppm/min per person per m3 of room
    volume = {"office": rng.uniform(90, 160), "meeting_room": rng.uniform(80, 130),
              "open_space": rng.uniform(300, 500)}[kind]
    capacity = {"office": int(rng.integers(3, 8)), "meeting_room": int(rng.integers(6, 12)),
                "open_space": int(rng.integers(15, 35))}[kind]
    return SensorProfile(
        devid=f"aq-{hex_id(seed, 'sensor', index)}", index=index,
        building=site[0], city=site[1],
        lat=round(site[2] + rng.normal(0, 0.0004), 6), long=round(site[3] + rng.normal(0, 0.0004), 6),
        utc_offset=site[4], floor=floor, room=f"{floor}.{int(rng.integers(1, 40)):02d}", room_kind=kind,
        volume_m3=float(volume), capacity=capacity, second_offset=int(rng.integers(0, 60)),
    )


def user_documents(fleet: Fleet) -> list[dict]:
    """``users`` collection documents (contracts §1)."""
    docs = []
    for u in fleet.users:
        rng = rng_for(fleet.seed, "user-dates", u.index)
        created_at = fleet.anchor - timedelta(days=int(rng.integers(30, 900)), seconds=int(rng.integers(0, 86_400)))
        dob = (fleet.anchor - timedelta(days=int(u.age * 365.25 + rng.integers(0, 365)))).replace(
            hour=0, minute=0, second=0)
        doc = {
            "_id": u.user_id, "user_id": u.user_id, "age": u.age, "height": u.height, "gender": u.gender,
            "email": f"{u.user_id}@example.org", "dob": dob, "created_at": created_at,
            "devices": [u.watch_id, u.phone_id],
        }
        # research: about half agree; of those a third only from a later day inside the simulated
        # period (curated data must start there); public and friends sharing are rarer
        for name, p_agree in zip(CONSENT_FIELDS, (0.5, 0.2, 0.6), strict=True):
            draw = rng.uniform()
            if draw >= p_agree:
                doc[name] = None
            elif draw < p_agree / 3:
                doc[name] = fleet.anchor + timedelta(days=int(rng.integers(1, 4)), hours=int(rng.integers(0, 24)))
            else:
                doc[name] = created_at + timedelta(minutes=int(rng.integers(1, 600)))
        docs.append(doc)
    return docs


def _history(rng, installed_at: datetime, anchor: datetime, calibrate_every_days: int | None) -> list[dict]:
    history = [{"ts": installed_at, "action": "INSTALLED", "technician_id": int(rng.integers(100, 120)),
                "notes": "installed and paired"}]
    if calibrate_every_days:
        ts = installed_at + timedelta(days=calibrate_every_days)
        while ts < anchor:
            history.append({"ts": ts, "action": "CALIBRATED", "technician_id": int(rng.integers(100, 120)),
                            "notes": f"two-point gas calibration, drift {rng.uniform(0.1, 3.0):.1f}%"})
            ts += timedelta(days=calibrate_every_days + int(rng.integers(-10, 10)))
    if rng.uniform() < 0.5:
        history.append({"ts": anchor - timedelta(days=int(rng.integers(1, 20))), "action": "FIRMWARE_UPGRADED",
                        "technician_id": int(rng.integers(100, 120)), "notes": f"firmware 2.{rng.integers(1, 9)}"})
    history.sort(key=lambda h: h["ts"])
    return history


def _mac(seed: int, *key: object) -> str:
    h = hex_id(seed, "mac", *key, length=12)
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


def device_documents(fleet: Fleet) -> list[dict]:
    """``devices`` registry documents (contracts §1): watches, phones and air-quality sensors."""
    docs = []
    for u in fleet.users:
        for kind, device_id, maker, model in (
            ("watch", u.watch_id, {"name": "Fitbit", "website": "https://www.fitbit.com"}, "Charge 6"),
            ("phone", u.phone_id, {"name": "Google", "website": "https://store.google.com"}, "Pixel 8"),
        ):
            rng = rng_for(fleet.seed, "device", device_id)
            installed_at = fleet.anchor - timedelta(days=int(rng.integers(10, 700)), minutes=int(rng.integers(0, 1440)))
            docs.append({
                "_id": device_id, "device_id": device_id, "kind": kind, "owner_user_id": u.user_id,
                "location": None, "manufacturer": maker, "model": model, "mac": _mac(fleet.seed, device_id),
                "installed_at": installed_at, "history": _history(rng, installed_at, fleet.anchor, None),
                "active": True,
            })
    for s in fleet.sensors:
        rng = rng_for(fleet.seed, "device", s.devid)
        installed_at = fleet.anchor - timedelta(days=int(rng.integers(120, 900)), minutes=int(rng.integers(0, 1440)))
        docs.append({
            "_id": s.devid, "device_id": s.devid, "kind": "air_quality", "owner_user_id": None,
            "location": {"lat": s.lat, "long": s.long,
                         "description": f"{s.room_kind.replace('_', ' ')} {s.room}, floor {s.floor}, "
                                        f"{s.building} {s.city}",
                         "building": s.building, "floor": s.floor, "room": s.room},
            "manufacturer": {"name": "Bosch Sensortec", "website": "https://www.bosch-sensortec.com"},
            "model": "BME688 IAQ node", "mac": _mac(fleet.seed, s.devid),
            "installed_at": installed_at, "history": _history(rng, installed_at, fleet.anchor, 90),
            "active": True,
        })
    return docs
