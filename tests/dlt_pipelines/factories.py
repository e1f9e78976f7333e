"""Source documents following docs/contracts.md §1, and one malformed document per bad kind.

A small local factory so the extract's tests do not depend on the generators package.
"""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta

BASE = datetime(2026, 11, 1, tzinfo=UTC)


def ms(dt: datetime) -> datetime:
    """BSON keeps milliseconds."""
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def device(device_id: str, kind: str = "air_quality", owner: str | None = None, ingested_at: datetime | None = None):
    return {
        "_id": device_id, "device_id": device_id, "kind": kind, "owner_user_id": owner,
        "location": None if owner else {"lat": 55.9, "long": -3.2, "description": "office", "building": "A",
                                         "floor": "2", "room": "201"},
        "manufacturer": {"name": "Bosch", "website": "https://bosch.example"}, "model": "BME680",
        "mac": "00:11:22:33:44:55", "installed_at": BASE - timedelta(days=30),
        "history": [{"ts": BASE - timedelta(days=30), "action": "INSTALLED", "technician_id": 7, "notes": "ok"}],
        "active": True, "_ingested_at": ingested_at or ms(datetime.now(UTC)),
    }


def user(user_id: str, devices: list[str], ingested_at: datetime | None = None):
    return {
        "_id": user_id, "user_id": user_id, "age": 34, "height": 172, "gender": "female",
        "email": f"{user_id}@example.org", "dob": datetime(1992, 3, 4, tzinfo=UTC), "created_at": BASE,
        "devices": devices, "share_with_research_asof": BASE, "share_with_public_asof": None,
        "share_with_friends_asof": None, "_ingested_at": ingested_at or ms(datetime.now(UTC)),
    }


def air_quality(devid: str, ts: datetime, ingested_at: datetime | None = None, i: int = 0):
    return {
        "_id": f"aq:{devid}:{int(ts.timestamp())}", "devid": devid, "ts": ts.isoformat(),
        "readings": [50.0 + i % 50, 21.5, 40.0, 101.3, 0.5, 600.0 + i % 100, 3],
        "_ingested_at": ingested_at or ms(datetime.now(UTC)),
    }


def heart_rate(device_id: str, start: datetime, samples: int = 3, ingested_at: datetime | None = None):
    return {
        "_id": f"hr:{device_id}:{int(start.timestamp())}", "device_id": device_id, "created_at": start,
        "ended_at": start + timedelta(hours=4),
        "metrics": [{"ts": start + timedelta(minutes=5 * k), "bpm": 60 + k, "confidence": 2} for k in range(samples)],
        "_ingested_at": ingested_at or ms(datetime.now(UTC)),
    }


def steps(device_id: str, start: datetime, ingested_at: datetime | None = None):
    return {
        "_id": f"st:{device_id}:{int(start.timestamp())}", "device_id": device_id, "created_at": start,
        "ended_at": start + timedelta(minutes=15),
        "metrics": [{"ts": start + timedelta(minutes=k), "steps": 10 * k} for k in range(15)],
        "_ingested_at": ingested_at or ms(datetime.now(UTC)),
    }


def sleep(device_id: str, start: datetime, ingested_at: datetime | None = None):
    return {
        "_id": f"sl:{device_id}:{int(start.timestamp())}", "device_id": device_id, "created_at": start,
        "ended_at": start + timedelta(minutes=15),
        "metrics": [{"start_ts": start - timedelta(hours=7), "end_ts": start + timedelta(minutes=10),
                     "duration": int(timedelta(hours=7, minutes=10).total_seconds() * 1000)}],
        "_ingested_at": ingested_at or ms(datetime.now(UTC)),
    }


def _bad(doc: dict, kind: str, suffix: str) -> dict:
    bad = copy.deepcopy(doc)
    bad["_id"] = f"{doc['_id']}:bad-{suffix}"
    bad["_test_bad_kind"] = kind
    return bad


def bad_documents(devid: str, watch: str, ts: datetime) -> list[tuple[str, dict]]:
    """(collection, document) for every bad kind of docs/contracts.md §1 except duplicate_id."""
    aq = air_quality(devid, ts)
    hr = heart_rate(watch, ts.replace(hour=0, minute=0, second=0, microsecond=0))
    out: list[tuple[str, dict]] = []

    def add(coll, base, kind, mutate, suffix=None):
        doc = _bad(base, kind, suffix or kind)
        mutate(doc)
        out.append((coll, doc))

    add("air_quality", aq, "missing_field", lambda d: d.pop("devid"))
    add("air_quality", aq, "wrong_type", lambda d: d.__setitem__("readings", {"iaq": 3}))
    add("air_quality", aq, "number_as_string", lambda d: d["readings"].__setitem__(1, "21.5"))
    add("air_quality", aq, "nan_or_infinity", lambda d: d["readings"].__setitem__(0, math.nan))
    add("air_quality", aq, "nan_or_infinity", lambda d: d["readings"].__setitem__(5, math.inf), "inf")
    add("air_quality", aq, "out_of_range", lambda d: d["readings"].__setitem__(2, 180.0))
    add("air_quality", aq, "readings_wrong_length", lambda d: d["readings"].pop())
    add("air_quality", aq, "ts_far_future", lambda d: d.__setitem__("ts", "2099-01-01T00:00:00+00:00"))
    add("air_quality", aq, "ts_before_2000", lambda d: d.__setitem__("ts", "1999-12-31T23:00:00+00:00"))
    add("air_quality", aq, "unknown_device", lambda d: d.__setitem__("devid", "no-such-device"))
    add("air_quality", aq, "nested_junk", lambda d: d.__setitem__("readings", [*d["readings"][:6], {"x": [1]}]))
    add("air_quality", aq, "unparseable_ts", lambda d: d.__setitem__("ts", "yesterday at noon"))
    add("air_quality", aq, "empty_document", lambda d: [d.pop(k) for k in ("devid", "ts", "readings")])
    add("heart_rates", hr, "nested_junk", lambda d: d["metrics"][1].__setitem__("junk", {"a": {"b": 1}}))
    add("heart_rates", hr, "out_of_range", lambda d: d["metrics"][0].__setitem__("bpm", 900))
    add("heart_rates", hr, "ts_before_2000", lambda d: d.__setitem__("created_at", datetime(1990, 1, 1, tzinfo=UTC)))
    return out


def rejected_write(collection: str, doc: dict) -> dict:
    """What the generator records when MongoDB refuses a duplicate _id (duplicate_id kind)."""
    return {"collection": collection, "document": doc, "error": "E11000 duplicate key error",
            "_test_bad_kind": "duplicate_id", "_ingested_at": ms(datetime.now(UTC))}
