"""Generated documents follow docs/contracts.md §1 and are deterministic."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from gen_support import START

from generators import (
    BAD_KINDS,
    MARKER,
    MEASUREMENTS,
    build_fleet,
    device_documents,
    documents,
    user_documents,
)

DAY = START + timedelta(days=1)


def _aware(value) -> bool:
    return isinstance(value, datetime) and value.utcoffset() == timedelta(0)


def test_users_follow_the_contract_and_consent_varies(fleet):
    users = user_documents(build_fleet(users=200, sensors=0, seed=3, anchor=START))
    for u in users:
        assert u["_id"] == u["user_id"]
        assert 18 <= u["age"] <= 85 and isinstance(u["age"], int)
        assert isinstance(u["height"], int) and 140 <= u["height"] <= 210
        assert u["gender"] in ("male", "female", "other")
        assert "@" in u["email"] and _aware(u["dob"]) and _aware(u["created_at"])
        assert len(u["devices"]) == 2 and u["devices"][0].startswith("w-") and u["devices"][1].startswith("p-")
        for name in ("share_with_research_asof", "share_with_public_asof", "share_with_friends_asof"):
            assert u[name] is None or _aware(u[name])
    research = [u["share_with_research_asof"] for u in users]
    agreed = [d for d in research if d is not None]
    assert 0.35 < len(agreed) / len(users) < 0.65  # about half agree to research
    assert any(d > START for d in agreed), "some agree only from a later date inside the simulated period"
    assert any(d < START for d in agreed)


def test_device_registry_covers_every_device(fleet):
    devices = {d["_id"]: d for d in device_documents(fleet)}
    assert set(devices) == fleet.known_device_ids
    for d in devices.values():
        assert d["kind"] in ("watch", "phone", "air_quality")
        assert set(d["manufacturer"]) == {"name", "website"} and d["model"] and len(d["mac"]) == 17
        assert _aware(d["installed_at"]) and d["history"][0]["action"] == "INSTALLED"
        assert all(h["action"] in ("INSTALLED", "CALIBRATED", "FIRMWARE_UPGRADED", "DECOMMISSIONED")
                   for h in d["history"])
        if d["kind"] == "air_quality":
            assert d["owner_user_id"] is None
            assert {"lat", "long", "description", "building", "floor", "room"} <= set(d["location"])
            assert any(h["action"] == "CALIBRATED" for h in d["history"])
        else:
            assert d["location"] is None and d["owner_user_id"].startswith("u-")


def test_air_quality_payload_shape(fleet):
    docs = documents(fleet, "air_quality", START, DAY)
    assert len(docs) > 0.98 * 1440 * len(fleet.sensors)  # one a minute, a few dropouts
    known = {s.devid: s for s in fleet.sensors}
    offsets = set()
    for d in docs:
        assert set(d) == {"_id", "devid", "ts", "readings"}
        ts = datetime.fromisoformat(d["ts"])
        assert ts.tzinfo is not None
        offsets.add(d["ts"][-6:] if d["ts"][-6] in "+-" else "Z")
        assert d["_id"] == f"aq:{d['devid']}:{int(ts.timestamp())}"
        assert d["devid"] in known and START <= ts < DAY
        iaq, temp, hum, pres, voc, co2, acc = d["readings"]
        assert len(d["readings"]) == 7 and all(isinstance(v, float) for v in d["readings"])
        assert 0 <= iaq <= 500 and 21 <= temp <= 27 and 30 <= hum <= 75 and 98 <= pres <= 104.5
        assert 0 < voc < 10 and 380 <= co2 <= 5000 and acc in (0.0, 1.0, 2.0, 3.0)
    assert offsets == {"Z", "+11:00"}, "most devices report Z, the Sydney site +11:00"


def test_wearable_bucket_shapes(fleet):
    hr = documents(fleet, "heart_rates", START, DAY)
    for d in hr:
        assert set(d) == {"_id", "device_id", "created_at", "ended_at", "metrics"}
        assert d["created_at"].hour % 4 == 0 and d["created_at"].minute == 0
        assert d["ended_at"] - d["created_at"] == timedelta(hours=4)
        gaps = [(b["ts"] - a["ts"]).total_seconds() for a, b in zip(d["metrics"], d["metrics"][1:], strict=False)]
        assert min(gaps) >= 5  # every few seconds to a minute (longer while the watch is off)
        for m in d["metrics"][:50]:
            assert _aware(m["ts"]) and d["created_at"] <= m["ts"] < d["ended_at"]
            assert isinstance(m["bpm"], int) and 35 <= m["bpm"] <= 220 and m["confidence"] in (0, 1, 2, 3)
    assert len(hr) >= 5 * len(fleet.users)

    steps = documents(fleet, "steps", START, DAY)
    assert len(steps) == 96 * len(fleet.users)
    for d in steps:
        assert d["ended_at"] - d["created_at"] == timedelta(minutes=15)
        assert [m["ts"] for m in d["metrics"]] == [d["created_at"] + timedelta(minutes=i) for i in range(15)]
        assert all(isinstance(m["steps"], int) and 0 <= m["steps"] <= 250 for m in d["metrics"])

    sleeps = documents(fleet, "sleeps", START, DAY)
    assert len(sleeps) >= len(fleet.users)  # one night each, occasionally a nap
    for d in sleeps:
        assert d["ended_at"] - d["created_at"] == timedelta(minutes=15)
        for m in d["metrics"]:
            assert d["created_at"] <= m["end_ts"] < d["ended_at"], "filed in the bucket where the sleep ended"
            assert m["duration"] == int((m["end_ts"] - m["start_ts"]).total_seconds() * 1000)


@pytest.mark.parametrize("collection", MEASUREMENTS)
def test_same_seed_same_documents_however_chunked(fleet, collection):
    start, end = START + timedelta(hours=20), START + timedelta(days=2, hours=3)
    whole = documents(fleet, collection, start, end, bad_rate=0.05)
    cut = START + timedelta(days=1, hours=1, minutes=7)
    pieces = documents(fleet, collection, start, cut, bad_rate=0.05) + documents(fleet, collection, cut, end,
                                                                                 bad_rate=0.05)
    again = documents(build_fleet(8, 8, seed=7, anchor=START), collection, start, end, bad_rate=0.05)
    key = lambda d: (d["_id"], repr(d))  # noqa: E731
    assert sorted(map(repr, whole)) == sorted(map(repr, pieces))
    assert [key(d) for d in whole] == [key(d) for d in again]
    other = documents(build_fleet(8, 8, seed=8, anchor=START), collection, start, end, bad_rate=0.05)
    assert {d["_id"] for d in other}.isdisjoint({d["_id"] for d in whole}), "another seed, another fleet"


def test_every_bad_kind_is_produced_and_really_bad(fleet):
    found: dict[str, list[tuple[str, dict]]] = {}
    clean = {}
    for collection in MEASUREMENTS:
        clean[collection] = {d["_id"]: d for d in documents(fleet, collection, START, DAY)}
        for d in documents(fleet, collection, START, DAY, bad_rate=0.2):
            if MARKER in d:
                found.setdefault(d[MARKER], []).append((collection, d))
    assert set(found) == set(BAD_KINDS)
    for kind, items in found.items():
        for collection, d in items:
            good = clean[collection].get(d["_id"])
            payload = d.get("readings", d.get("metrics"))
            if kind == "empty_document":
                assert set(d) == {"_id", MARKER}
            elif kind == "missing_field":
                assert len(set(d) - {MARKER}) == len(good) - 1
            elif kind == "readings_wrong_length":
                assert collection == "air_quality" and len(payload) in (6, 8)
            elif kind == "nan_or_infinity":
                values = payload if collection == "air_quality" else [v for m in payload for v in m.values()]
                assert any(isinstance(v, float) and not math.isfinite(v) for v in values)
            elif kind == "number_as_string":
                values = payload if collection == "air_quality" else [v for m in payload for v in m.values()]
                assert any(isinstance(v, str) and float(v) is not None for v in values)
            elif kind == "unknown_device":
                assert good is None and (d.get("devid") or d.get("device_id")) not in fleet.known_device_ids
            elif kind == "duplicate_id":
                assert good is not None and {k: v for k, v in d.items() if k != MARKER} != good
            elif kind in ("ts_far_future", "ts_before_2000", "unparseable_ts"):
                stamp = d.get("ts", d.get("created_at"))
                if kind == "unparseable_ts":
                    assert isinstance(stamp, str)
                    with pytest.raises(ValueError):
                        datetime.fromisoformat(stamp)
                else:
                    moment = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
                    assert moment.year >= 2099 if kind == "ts_far_future" else moment.year < 2000
            else:
                assert {k: v for k, v in d.items() if k != MARKER} != good, kind
    bad_share = sum(len(v) for v in found.values()) / sum(len(c) for c in clean.values())
    assert 0.15 < bad_share < 0.26
    assert all(MARKER not in d for c in clean.values() for d in c.values())
    assert all(d["_id"].endswith(str(int(d["_id"].rsplit(":", 1)[1]))) for c in clean.values() for d in c.values())
    assert datetime.now(UTC) > START  # the fixed week is in the past: backfill-able
