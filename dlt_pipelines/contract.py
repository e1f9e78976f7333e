"""The schema contract of the extract: validate one MongoDB document and flatten it into raw rows.

Pure Python (no dlt, no database), one pass per document, so it is cheap enough for the large
time-series collections and easy to test. A document that does not fit yields a *reason*
(``"<kind>: <detail>"``) instead of rows; the caller writes it to ``raw.quarantine``.

The kinds in the reasons are the bad-document kinds of docs/contracts.md §1. They are derived
from the document's content only: the generators' ``_test_bad_kind`` marker is never read (it
is ignored like an absent field, so it can neither cause nor hide a quarantine).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Fields that exist only for the test harness; never used for detection.
IGNORED_FIELDS = frozenset({"_test_bad_kind"})
META_FIELDS = frozenset({"_id", "_ingested_at"})

MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
# Device clocks drift; a reading more than this far ahead of the extract is not believable.
FUTURE_TOLERANCE = timedelta(days=1)

AIR_QUALITY_MEASURES = ("iaq", "temperature", "humidity", "pressure", "voc", "co2", "iaq_accuracy")
# Physically plausible ranges of the 7 readings (sensor data-sheet limits, BME680 class devices).
AIR_QUALITY_RANGES = {
    "iaq": (0.0, 500.0),
    "temperature": (-40.0, 85.0),
    "humidity": (0.0, 100.0),
    "pressure": (30.0, 110.0),        # kPa
    "voc": (0.0, 1000.0),             # ppm
    "co2": (0.0, 40000.0),            # ppm
    "iaq_accuracy": (0.0, 3.0),
}


class BadDocument(Exception):
    """Raised inside validation; ``str(exc)`` is the quarantine reason ``"<kind>: <detail>"``."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass
class Context:
    """What validation needs besides the document: the clock and the device registry."""

    now: datetime
    known_devices: frozenset[str] | None = None  # None: registry not checked

    @property
    def max_ts(self) -> datetime:
        return self.now + FUTURE_TOLERANCE


# ------------------------------------------------------------------ field checks
def _is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def _looks_numeric(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def _type_error(name: str, v: Any, expected: str) -> BadDocument:
    if type(v) in (dict, list) and expected != "list":
        return BadDocument("nested_junk", f"{name} is a nested {type(v).__name__}, expected {expected}")
    if expected in ("number", "int") and _looks_numeric(v):
        return BadDocument("number_as_string", f"{name} is the string {v!r}, expected a {expected}")
    return BadDocument("wrong_type", f"{name} is {type(v).__name__}, expected {expected}")


def required(doc: dict, name: str, label: str) -> Any:
    """The value of a field that must be present (it may still be None: the caller decides)."""
    if name not in doc:
        raise BadDocument("missing_field", f"{label} is missing")
    return doc[name]


def number(doc: dict, name: str, lo: float | None = None, hi: float | None = None, label: str | None = None,
           integral: bool = False) -> float:
    label = label or name
    return check_number(required(doc, name, label), label, lo, hi, integral)


def check_number(v: Any, label: str, lo: float | None, hi: float | None, integral: bool = False) -> float:
    if not _is_number(v):
        raise _type_error(label, v, "int" if integral else "number")
    if type(v) is float:
        if not math.isfinite(v):
            raise BadDocument("nan_or_infinity", f"{label} is {v}")
        if integral and not v.is_integer():
            raise BadDocument("wrong_type", f"{label} is {v}, expected an integer")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise BadDocument("out_of_range", f"{label} = {v} outside [{lo}, {hi}]")
    return v


def text(doc: dict, name: str, label: str | None = None, nullable: bool = False,
         choices: frozenset[str] | None = None) -> str | None:
    label = label or name
    v = required(doc, name, label)
    if v is None and nullable:
        return None
    if type(v) is not str:
        raise _type_error(label, v, "str")
    if choices is not None and v not in choices:
        raise BadDocument("out_of_range", f"{label} = {v!r} not one of {sorted(choices)}")
    return v


def timestamp(doc: dict, name: str, ctx: Context, label: str | None = None, nullable: bool = False,
              lo: datetime = MIN_TS) -> datetime | None:
    label = label or name
    v = required(doc, name, label)
    if v is None and nullable:
        return None
    if not isinstance(v, datetime):
        if isinstance(v, str):
            try:
                datetime.fromisoformat(v)
            except ValueError:
                raise BadDocument("unparseable_ts", f"{label} = {v!r} is not a timestamp") from None
            raise BadDocument("wrong_type", f"{label} is the string {v!r}, expected a BSON datetime")
        raise _type_error(label, v, "datetime")
    return check_time(v, label, ctx, lo)


def check_time(v: datetime, label: str, ctx: Context, lo: datetime = MIN_TS) -> datetime:
    if v.tzinfo is None:  # pymongo without tz_aware: BSON datetimes are UTC
        v = v.replace(tzinfo=UTC)
    if v < lo:
        kind = "ts_before_2000" if lo == MIN_TS else "out_of_range"
        raise BadDocument(kind, f"{label} = {v.isoformat()} is before {lo.date()}")
    if v > ctx.max_ts:
        raise BadDocument("ts_far_future", f"{label} = {v.isoformat()} is after {ctx.max_ts.isoformat()}")
    return v


def parse_iso_ts(v: Any, label: str, ctx: Context) -> str:
    """Check a device ``ts`` string (ISO-8601 with offset); raw keeps it as sent."""
    if type(v) is not str:
        raise _type_error(label, v, "ISO-8601 str")
    try:
        parsed = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    except ValueError:
        raise BadDocument("unparseable_ts", f"{label} = {v!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        raise BadDocument("unparseable_ts", f"{label} = {v!r} has no UTC offset")
    check_time(parsed, label, ctx)
    return v


def device(doc: dict, name: str, ctx: Context) -> str:
    v = text(doc, name)
    if ctx.known_devices is not None and v not in ctx.known_devices:
        raise BadDocument("unknown_device", f"{name} = {v!r} is not in the device registry")
    return v


def no_unknown_fields(doc: dict, allowed: frozenset[str], where: str) -> None:
    extra = [k for k in doc if k not in allowed and k not in IGNORED_FIELDS]
    if extra:
        raise BadDocument("nested_junk" if where != "document" else "wrong_type",
                          f"unexpected field(s) {sorted(map(str, extra))} in {where}")


def required_list(doc: dict, field: str) -> list:
    items = required(doc, field, field)
    if type(items) is not list:
        raise BadDocument("wrong_type", f"{field} is {type(items).__name__}, expected list")
    return items


def metrics_list(doc: dict, item_fields: frozenset[str]) -> list[dict]:
    items = required_list(doc, "metrics")
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise BadDocument("nested_junk", f"metrics[{i}] is {type(item).__name__}, expected an object")
        no_unknown_fields(item, item_fields, f"metrics[{i}]")
    return items


def ensure_not_empty(doc: dict) -> None:
    if not any(k not in META_FIELDS and k not in IGNORED_FIELDS for k in doc):
        raise BadDocument("empty_document", "the document has no fields besides _id and _ingested_at")


# ------------------------------------------------------------------ collections
@dataclass
class Flattened:
    """Rows of one good document: the parent row and its child rows (time-series buckets)."""

    row: dict
    children: list[dict] = field(default_factory=list)


def _bucket(doc: dict, ctx: Context) -> dict:
    created = timestamp(doc, "created_at", ctx)
    ended = timestamp(doc, "ended_at", ctx)
    if ended < created:
        raise BadDocument("out_of_range", f"ended_at {ended.isoformat()} is before created_at {created.isoformat()}")
    return {"device_id": device(doc, "device_id", ctx), "created_at": created, "ended_at": ended}


def flatten_air_quality(doc: dict, ctx: Context) -> Flattened:
    no_unknown_fields(doc, frozenset({"_id", "_ingested_at", "devid", "ts", "readings"}), "document")
    row = {"devid": device(doc, "devid", ctx)}
    row["ts"] = parse_iso_ts(required(doc, "ts", "ts"), "ts", ctx)
    readings = required(doc, "readings", "readings")
    if type(readings) is not list:
        raise BadDocument("wrong_type", f"readings is {type(readings).__name__}, expected list")
    if len(readings) != len(AIR_QUALITY_MEASURES):
        raise BadDocument("readings_wrong_length", f"readings has {len(readings)} values, expected 7")
    for name, value in zip(AIR_QUALITY_MEASURES, readings, strict=True):
        lo, hi = AIR_QUALITY_RANGES[name]
        if type(value) in (list, dict):
            raise BadDocument("nested_junk", f"readings[{name}] is a nested {type(value).__name__}")
        row[name] = float(check_number(value, f"readings[{name}]", lo, hi))
    return Flattened(row)


def _flatten_buckets(doc: dict, ctx: Context, item_fields: frozenset[str],
                     item: Callable[[dict, str, Context], dict],
                     fast_item: Callable[[dict, Context], dict | None] | None = None) -> Flattened:
    no_unknown_fields(doc, frozenset({"_id", "_ingested_at", "device_id", "created_at", "ended_at", "metrics"}),
                      "document")
    row = _bucket(doc, ctx)
    items = doc.get("metrics")
    children = None
    if fast_item is not None and type(items) is list:
        # hundreds of items per bucket: the plain ones skip the labelled checks; any other item
        # sends the whole bucket through them, which name the reason
        children = [fast_item(m, ctx) for m in items]
        if None in children:
            children = None
    if children is None:
        items = metrics_list(doc, item_fields)
        children = [item(m, f"metrics[{i}]", ctx) for i, m in enumerate(items)]
    for idx, child in enumerate(children):
        child["idx"] = idx
    row["sample_count"] = len(children)
    return Flattened(row, children)


_HR_KEYS = frozenset({"ts", "bpm", "confidence"})
_STEP_KEYS = frozenset({"ts", "steps"})


def _plain_time(v: Any, ctx: Context) -> bool:
    return type(v) is datetime and v.tzinfo is not None and MIN_TS <= v <= ctx.max_ts


def _fast_heart_rate_item(m: dict, ctx: Context) -> dict | None:
    """The item's row when it is plainly valid (same rules as _heart_rate_item, no labels built)."""
    if type(m) is not dict or m.keys() != _HR_KEYS:
        return None
    ts, bpm, confidence = m["ts"], m["bpm"], m["confidence"]
    if not _plain_time(ts, ctx) or type(bpm) not in (int, float) or type(confidence) is not int:
        return None
    if not (20 <= bpm <= 250 and 0 <= confidence <= 3):  # NaN fails the comparison
        return None
    return {"ts": ts, "bpm": float(bpm), "confidence": float(confidence)}


def _fast_steps_item(m: dict, ctx: Context) -> dict | None:
    if type(m) is not dict or m.keys() != _STEP_KEYS:
        return None
    ts, steps = m["ts"], m["steps"]
    if not _plain_time(ts, ctx) or type(steps) is not int or not 0 <= steps <= 400:
        return None
    return {"ts": ts, "steps": steps}


def _heart_rate_item(m: dict, where: str, ctx: Context) -> dict:
    return {"ts": timestamp(m, "ts", ctx, f"{where}.ts"),
            "bpm": float(number(m, "bpm", 20, 250, f"{where}.bpm")),
            "confidence": float(number(m, "confidence", 0, 3, f"{where}.confidence", integral=True))}


def _steps_item(m: dict, where: str, ctx: Context) -> dict:
    return {"ts": timestamp(m, "ts", ctx, f"{where}.ts"),
            "steps": int(number(m, "steps", 0, 400, f"{where}.steps", integral=True))}


def _sleep_item(m: dict, where: str, ctx: Context) -> dict:
    start = timestamp(m, "start_ts", ctx, f"{where}.start_ts")
    end = timestamp(m, "end_ts", ctx, f"{where}.end_ts")
    if end < start:
        raise BadDocument("out_of_range", f"{where}.end_ts is before {where}.start_ts")
    duration = number(m, "duration", 0, 86_400_000, f"{where}.duration", integral=True)
    return {"start_ts": start, "end_ts": end, "duration": int(duration)}


def flatten_heart_rates(doc: dict, ctx: Context) -> Flattened:
    return _flatten_buckets(doc, ctx, _HR_KEYS, _heart_rate_item, _fast_heart_rate_item)


def flatten_steps(doc: dict, ctx: Context) -> Flattened:
    return _flatten_buckets(doc, ctx, _STEP_KEYS, _steps_item, _fast_steps_item)


def flatten_sleeps(doc: dict, ctx: Context) -> Flattened:
    return _flatten_buckets(doc, ctx, frozenset({"start_ts", "end_ts", "duration"}), _sleep_item)


GENDERS = frozenset({"male", "female", "other"})
USER_FIELDS = frozenset({"_id", "_ingested_at", "user_id", "age", "height", "gender", "email", "dob", "created_at",
                         "devices", "share_with_research_asof", "share_with_public_asof",
                         "share_with_friends_asof"})


def flatten_users(doc: dict, ctx: Context) -> Flattened:
    no_unknown_fields(doc, USER_FIELDS, "document")
    row = {"user_id": text(doc, "user_id"),
           "age": int(number(doc, "age", 0, 130, integral=True)),
           "height": int(number(doc, "height", 30, 272, integral=True)),
           "gender": text(doc, "gender", choices=GENDERS),
           "email": text(doc, "email")}
    if "@" not in row["email"]:
        raise BadDocument("wrong_type", f"email {row['email']!r} is not an e-mail address")
    row["dob"] = timestamp(doc, "dob", ctx, lo=datetime(1890, 1, 1, tzinfo=UTC))
    row["created_at"] = timestamp(doc, "created_at", ctx)
    for consent in ("share_with_research_asof", "share_with_public_asof", "share_with_friends_asof"):
        row[consent] = timestamp(doc, consent, ctx, nullable=True)
    devices = required_list(doc, "devices")
    for i, d in enumerate(devices):
        if type(d) is not str:
            raise BadDocument("nested_junk", f"devices[{i}] is {type(d).__name__}, expected str")
        if ctx.known_devices is not None and d not in ctx.known_devices:
            raise BadDocument("unknown_device", f"devices[{i}] = {d!r} is not in the device registry")
    row["devices"] = list(devices)
    return Flattened(row)


DEVICE_KINDS = frozenset({"watch", "phone", "air_quality"})
DEVICE_ACTIONS = frozenset({"INSTALLED", "CALIBRATED", "FIRMWARE_UPGRADED", "DECOMMISSIONED"})
DEVICE_FIELDS = frozenset({"_id", "_ingested_at", "device_id", "kind", "owner_user_id", "location", "manufacturer",
                           "model", "mac", "installed_at", "history", "active"})
LOCATION_FIELDS = frozenset({"lat", "long", "description", "building", "floor", "room"})


def _optional_text(doc: dict, name: str, label: str) -> str | None:
    v = doc.get(name)
    if v is None:
        return None
    if type(v) is not str:
        if _is_number(v) and name in ("floor", "room"):  # floor 3 / room 12 are fine as numbers
            return str(v)
        raise _type_error(label, v, "str")
    return v


def flatten_devices(doc: dict, ctx: Context) -> Flattened:
    no_unknown_fields(doc, DEVICE_FIELDS, "document")
    row = {"device_id": text(doc, "device_id"),
           "kind": text(doc, "kind", choices=DEVICE_KINDS),
           "owner_user_id": text(doc, "owner_user_id", nullable=True)}
    location = doc.get("location")
    if location is not None:
        if type(location) is not dict:
            raise BadDocument("wrong_type", f"location is {type(location).__name__}, expected an object")
        no_unknown_fields(location, LOCATION_FIELDS, "location")
        row["lat"] = float(number(location, "lat", -90, 90, "location.lat"))
        row["long"] = float(number(location, "long", -180, 180, "location.long"))
        row["location_description"] = _optional_text(location, "description", "location.description")
        for name in ("building", "floor", "room"):
            row[name] = _optional_text(location, name, f"location.{name}")
    else:
        row.update(lat=None, long=None, location_description=None, building=None, floor=None, room=None)
    manufacturer = doc.get("manufacturer")
    if manufacturer is None:
        raise BadDocument("missing_field", "manufacturer is missing")
    if type(manufacturer) is not dict:
        raise BadDocument("wrong_type", f"manufacturer is {type(manufacturer).__name__}, expected an object")
    no_unknown_fields(manufacturer, frozenset({"name", "website"}), "manufacturer")
    row["manufacturer_name"] = text(manufacturer, "name", "manufacturer.name")
    row["manufacturer_website"] = _optional_text(manufacturer, "website", "manufacturer.website")
    row["model"] = text(doc, "model")
    row["mac"] = text(doc, "mac")
    row["installed_at"] = timestamp(doc, "installed_at", ctx)
    active = doc.get("active")
    if type(active) is not bool:
        raise (BadDocument("missing_field", "active is missing") if "active" not in doc
               else _type_error("active", active, "bool"))
    row["active"] = active
    history = doc.get("history", [])
    if type(history) is not list:
        raise BadDocument("wrong_type", f"history is {type(history).__name__}, expected list")
    for i, h in enumerate(history):
        if type(h) is not dict:
            raise BadDocument("nested_junk", f"history[{i}] is {type(h).__name__}, expected an object")
        no_unknown_fields(h, frozenset({"ts", "action", "technician_id", "notes"}), f"history[{i}]")
        timestamp(h, "ts", ctx, f"history[{i}].ts")
        text(h, "action", f"history[{i}].action", choices=DEVICE_ACTIONS)
    row["history"] = [{**h, "ts": h["ts"].isoformat()} for h in history]
    return Flattened(row)


FLATTENERS: dict[str, Callable[[dict, Context], Flattened]] = {
    "air_quality": flatten_air_quality,
    "heart_rates": flatten_heart_rates,
    "steps": flatten_steps,
    "sleeps": flatten_sleeps,
    "users": flatten_users,
    "devices": flatten_devices,
}
# Writes MongoDB refused (duplicate_id); every document there is quarantined, never loaded.
REJECTED_WRITES = "rejected_writes"
COLLECTIONS = (*FLATTENERS, REJECTED_WRITES)
# Collections whose documents reference a device of the registry.
DEVICE_CHECKED = frozenset({"air_quality", "heart_rates", "steps", "sleeps", "users"})


def flatten(collection: str, doc: dict, ctx: Context) -> Flattened:
    """Rows of a good document; raises :class:`BadDocument` with the quarantine reason otherwise."""
    if collection == REJECTED_WRITES:
        target = doc.get("collection", "?")
        raise BadDocument("duplicate_id", f"MongoDB refused a second write of an existing _id to {target}")
    if type(doc.get("_id")) is not str:
        raise BadDocument("wrong_type", f"_id is {type(doc.get('_id')).__name__}, expected str")
    ensure_not_empty(doc)
    return FLATTENERS[collection](doc, ctx)
