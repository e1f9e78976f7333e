"""Malformed documents on purpose (``--bad-rate``), so the pipeline's quarantine can be tested.

A bad document takes the place of a good one (the device sent garbage instead of its reading),
except ``duplicate_id``, which is an *extra* document reusing an existing ``_id`` with different
content (MongoDB refuses it; the writer records the refusal in ``rejected_writes``). Every bad
document names its kind in ``_test_bad_kind``; the pipeline must detect the defect from the data
itself, never from that field. What each kind does (collection-specific field names):

| kind | air_quality | heart_rates / steps / sleeps |
|---|---|---|
| missing_field | drops `readings`, `ts` or `devid` | drops `metrics`, `created_at` or `device_id` |
| wrong_type | `readings` becomes an object or a string | `metrics` becomes a string or an object |
| number_as_string | one reading is a numeric string ("23.51") | one metric value is a numeric string |
| nan_or_infinity | one reading is NaN, +Inf or -Inf | one metric value is NaN or +-Inf |
| out_of_range | temperature 180 °C, humidity 140 %, CO2 -50 or pressure 0 | bpm 400 or -5, steps -20 or 5000, negative duration |
| readings_wrong_length | 6 or 8 readings (air_quality only) | - |
| ts_far_future | `ts` in 2099 | `created_at` in 2099 |
| ts_before_2000 | `ts` in 1999 or 1970 | `created_at` in 1999 |
| unknown_device | `devid` not in the registry (and `_id` built from it) | `device_id` not in the registry |
| duplicate_id | extra doc, same `_id`, other readings | extra doc, same `_id`, other metrics |
| nested_junk | a reading replaced by a nested object | a metric value replaced by a nested object |
| empty_document | only `_id` | only `_id` |
| unparseable_ts | `ts` like "32/13/2026 25:61" | `created_at` is such a string |
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from generators.common import hex_id, rng_for

BAD_KINDS = (
    "missing_field", "wrong_type", "number_as_string", "nan_or_infinity", "out_of_range",
    "readings_wrong_length", "ts_far_future", "ts_before_2000", "unknown_device", "duplicate_id",
    "nested_junk", "empty_document", "unparseable_ts",
)
MARKER = "_test_bad_kind"
METRIC_VALUE = {"heart_rates": "bpm", "steps": "steps", "sleeps": "duration"}
DEVICE_FIELD = {"air_quality": "devid", "heart_rates": "device_id", "steps": "device_id", "sleeps": "device_id"}
TIME_FIELD = {"air_quality": "ts", "heart_rates": "created_at", "steps": "created_at", "sleeps": "created_at"}
PAYLOAD_FIELD = {"air_quality": "readings", "heart_rates": "metrics", "steps": "metrics", "sleeps": "metrics"}


def kinds_for(collection: str) -> tuple[str, ...]:
    if collection == "air_quality":
        return BAD_KINDS
    return tuple(k for k in BAD_KINDS if k != "readings_wrong_length")


def corrupt(docs: list[dict], collection: str, rate: float, seed: int, *window: object) -> list[dict]:
    """``docs`` with about ``rate`` of them made bad; deterministic per ``(seed, collection, window)``."""
    if rate <= 0 or not docs:
        return docs
    rng = rng_for(seed, "bad", collection, *window)
    chosen = np.flatnonzero(rng.uniform(size=len(docs)) < rate)
    if chosen.size == 0:
        return docs
    kinds = kinds_for(collection)
    out = list(docs)
    duplicates = []
    for i, kind_index in zip(chosen.tolist(), rng.integers(0, len(kinds), chosen.size).tolist(), strict=True):
        kind = kinds[kind_index]
        bad = _make_bad(docs[i], collection, kind, rng, seed)
        bad[MARKER] = kind
        if kind == "duplicate_id":
            duplicates.append((i, bad))
        else:
            out[i] = bad
    # each duplicate goes right after its original, so the original is the one MongoDB keeps
    for offset, (i, bad) in enumerate(duplicates):
        out.insert(i + 1 + offset, bad)
    return out


def _payload_copy(doc: dict, collection: str) -> tuple[dict, list]:
    bad = dict(doc)
    payload = list(doc[PAYLOAD_FIELD[collection]])
    bad[PAYLOAD_FIELD[collection]] = payload
    return bad, payload


def _set_value(doc: dict, collection: str, rng: np.random.Generator, make) -> dict:
    """A copy of ``doc`` with one reading / metric value replaced by ``make(old_value)``."""
    bad, payload = _payload_copy(doc, collection)
    if collection == "air_quality":
        j = int(rng.integers(0, len(payload)))
        payload[j] = make(payload[j])
    else:
        j = int(rng.integers(0, len(payload)))
        field = METRIC_VALUE[collection]
        payload[j] = {**payload[j], field: make(payload[j][field])}
    return bad


def _make_bad(doc: dict, collection: str, kind: str, rng: np.random.Generator, seed: int) -> dict:
    time_field, device_field = TIME_FIELD[collection], DEVICE_FIELD[collection]
    is_aq = collection == "air_quality"
    if kind == "missing_field":
        bad = dict(doc)
        del bad[str(rng.choice([PAYLOAD_FIELD[collection], time_field, device_field]))]
        return bad
    if kind == "wrong_type":
        bad = dict(doc)
        payload = doc[PAYLOAD_FIELD[collection]]
        bad[PAYLOAD_FIELD[collection]] = (
            {"values": payload} if rng.uniform() < 0.5 else ";".join(str(v) for v in payload[:3]))
        return bad
    if kind == "number_as_string":
        return _set_value(doc, collection, rng, lambda v: str(v))
    if kind == "nan_or_infinity":
        special = float(rng.choice([math.nan, math.inf, -math.inf]))
        return _set_value(doc, collection, rng, lambda v: special)
    if kind == "out_of_range":
        if is_aq:
            bad, payload = _payload_copy(doc, collection)
            index, value = [(1, 180.0), (2, 140.0), (5, -50.0), (3, 0.0)][int(rng.integers(0, 4))]
            payload[index] = value
            return bad
        value = {"heart_rates": [400, -5], "steps": [-20, 5000], "sleeps": [-3_600_000, -1]}[collection]
        return _set_value(doc, collection, rng, lambda v: value[int(rng.integers(0, 2))])
    if kind == "readings_wrong_length":
        bad, payload = _payload_copy(doc, collection)
        if rng.uniform() < 0.5:
            payload.pop()
        else:
            payload.append(payload[-1])
        return bad
    if kind in ("ts_far_future", "ts_before_2000"):
        moment = datetime(2099, 7, 1, 12, 0, tzinfo=UTC) if kind == "ts_far_future" else \
            [datetime(1999, 12, 31, 23, 0, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)][int(rng.integers(0, 2))]
        bad = dict(doc)
        bad[time_field] = moment.strftime("%Y-%m-%dT%H:%M:%SZ") if is_aq else moment
        return bad
    if kind == "unknown_device":
        bad = dict(doc)
        prefix, device, epoch = doc["_id"].split(":")
        stranger = device.split("-")[0] + "-" + hex_id(seed, "stranger", int(rng.integers(0, 1 << 30)))
        bad[device_field] = stranger
        bad["_id"] = f"{prefix}:{stranger}:{epoch}"
        return bad
    if kind == "duplicate_id":
        if is_aq:
            bad, payload = _payload_copy(doc, collection)
            payload[5] = float(payload[5]) + float(rng.integers(5, 50))  # a different CO2 value
            return bad
        return _set_value(doc, collection, rng, lambda v: v + int(rng.integers(1, 9)))
    if kind == "nested_junk":
        return _set_value(doc, collection, rng, lambda v: {"value": v, "debug": {"raw": [v, None], "fw": "2.3"}})
    if kind == "empty_document":
        return {"_id": doc["_id"]}
    if kind == "unparseable_ts":
        bad = dict(doc)
        bad[time_field] = str(rng.choice(["32/13/2026 25:61", "yesterday at noon", "2026-02-30T99:00:00Z", ""]))
        return bad
    raise ValueError(f"unknown bad kind {kind!r}")
