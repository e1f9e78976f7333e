"""The schema contract of the extract: validate one MongoDB document and flatten it into raw rows.

Every rule comes from the one data contract, ``iot_core.contract`` (fields, types, ranges,
choices, time roles, device kinds, bucket spans), and every timestamp is parsed by
``iot_core.timestamps``; this module applies them to one document. Pure Python (no dlt, no
database), one pass per document, so it is cheap enough for the large time-series collections and
easy to test; the API's ``PUT /sensorsdata`` runs the same code. A document that does not fit
yields a *reason* (``"<kind>: <detail>"``) instead of rows; the caller writes it to
``raw.quarantine``.

Judged field by field, for what the field means: a measurement time may not lie in the future, a
"valid from" date (consent) may; a date of birth may not. Contradictions inside a document are
refused too: samples outside their bucket, a bucket longer than its span, a sleep whose duration
disagrees with its start and end, an age that disagrees with the date of birth, a device whose
kind cannot send this collection (a heart rate from an air-quality sensor).

Numbers may arrive in any BSON encoding: int32, int64 (``bson.int64.Int64``, an ``int``
subclass), double, Decimal128. Integers beyond int64 (a double or Decimal128 holding one) are
refused, as are NaN and infinities, and ``bool`` (an ``int`` subclass in Python, not a number).

The kinds in the reasons start with the bad-document kinds of docs/contracts.md §1. They are
derived from the document's content only: the generators' ``_test_bad_kind`` marker is never read
(it is ignored like an absent field, so it can neither cause nor hide a quarantine).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from typing import Any

from bson.decimal128 import Decimal128

from iot_core import contract as spec
from iot_core.timestamps import TimestampError, iso_utc, parse_timestamp

try:  # pymongo >= 4.3 decodes BSON datetimes outside Python's range to DatetimeMS when asked to
    from bson.datetime_ms import DatetimeMS
except ImportError:  # pragma: no cover
    DatetimeMS = ()  # type: ignore[assignment,misc]

# Fields that exist only for the test harness; never used for detection.
IGNORED_FIELDS = frozenset(spec.TEST_MARKER_FIELDS)
META_FIELDS = frozenset(spec.META_FIELDS)

MIN_TS = spec.MIN_TS
FUTURE_TOLERANCE = spec.FUTURE_TOLERANCE
AIR_QUALITY_MEASURES = spec.MEASURE_NAMES
AIR_QUALITY_RANGES = {m.name: (float(m.minimum), float(m.maximum)) for m in spec.MEASURES}
_DOB_MIN_YEARS = spec.MAX_AGE_YEARS + 1


class BadDocument(Exception):
    """Raised inside validation; ``str(exc)`` is the quarantine reason ``"<kind>: <detail>"``."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def device_zone_from_settings() -> tzinfo | None:
    """The zone of DEVICE_TIMEZONE (None: times without an offset are refused)."""
    from iot_core.settings import get_settings

    name = get_settings().device_timezone
    if not name:
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@dataclass
class Context:
    """What validation needs besides the document: the clock, the device registry and the zone of
    device clocks that send times without an offset (setting DEVICE_TIMEZONE; None: refuse them).

    ``known_devices``: ``{device id: kind}`` (then the kind is checked against the collection's
    senders), a set of ids (registry membership only), or None (registry not checked).
    """

    now: datetime
    known_devices: Mapping[str, str] | frozenset[str] | None = None
    naive_zone: tzinfo | None = field(default_factory=device_zone_from_settings)

    @property
    def max_ts(self) -> datetime:
        """The latest acceptable measurement time."""
        return self.now + FUTURE_TOLERANCE

    @cached_property
    def _senders(self) -> dict[str, frozenset[str] | None]:
        if self.known_devices is None:
            return {c: None for c in spec.COLLECTIONS}
        if not isinstance(self.known_devices, Mapping):
            return {c: frozenset(self.known_devices) for c in spec.COLLECTIONS}
        return {c.name: frozenset(d for d, kind in self.known_devices.items() if kind in c.sender_kinds)
                for c in spec.COLLECTIONS.values()}

    def devices_sending(self, collection: str) -> frozenset[str] | None:
        """The registered devices whose kind may send ``collection`` (None: not checked)."""
        return self._senders[collection]

    def is_known(self, device_id: str) -> bool:
        return self.known_devices is None or device_id in self.known_devices


# ------------------------------------------------------------------ field checks
def _looks_numeric(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def _type_name(v: Any) -> str:
    return type(v).__name__


def _type_error(name: str, v: Any, expected: str) -> BadDocument:
    if type(v) in (dict, list) and expected != "list":
        return BadDocument("nested_junk", f"{name} is a nested {type(v).__name__}, expected {expected}")
    if expected in ("number", "int") and _looks_numeric(v):
        return BadDocument("number_as_string", f"{name} is the string {_short(v)}, expected a {expected}")
    return BadDocument("wrong_type", f"{name} is {_type_name(v)}, expected {expected}")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def required(doc: dict, name: str, label: str) -> Any:
    """The value of a field that must be present (it may still be None: the caller decides)."""
    if name not in doc:
        raise BadDocument("missing_field", f"{label} is missing")
    return doc[name]


def number(doc: dict, name: str, lo: float | None = None, hi: float | None = None, label: str | None = None,
           integral: bool = False) -> float | int:
    label = label or name
    return check_number(required(doc, name, label), label, lo, hi, integral)


def check_number(v: Any, label: str, lo: float | None, hi: float | None, integral: bool = False) -> float | int:
    """A number in any BSON encoding, checked: an ``int`` when ``integral`` (within int64), else a float."""
    t = type(v)
    if t is float:
        if not math.isfinite(v):
            raise BadDocument("nan_or_infinity", f"{label} is {v}")
    elif t is Decimal128:
        v = v.to_decimal()
        if not v.is_finite():
            raise BadDocument("nan_or_infinity", f"{label} is {v}")
    elif not isinstance(v, int) or t is bool:  # int32 / int64 (bson.int64.Int64 subclasses int)
        raise _type_error(label, v, "int" if integral else "number")
    if integral:
        if v != int(v):
            raise BadDocument("wrong_type", f"{label} is {v}, expected an integer")
        if not spec.INT64_MIN <= int(v) <= spec.INT64_MAX:
            raise BadDocument("integer_overflow", f"{label} = {v} does not fit a 64-bit integer")
        v = int(v)
    elif t is Decimal128:
        v = float(v)
        if not math.isfinite(v):
            raise BadDocument("out_of_range", f"{label} = {v} does not fit a double")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise BadDocument("out_of_range", f"{label} = {v} outside [{lo}, {hi}]")
    return v if integral else float(v)


def check_text(v: str, label: str, identifier: bool = False) -> str:
    """A string PostgreSQL can store; identifiers also short, non-empty, without control characters."""
    if "\x00" in v:
        raise BadDocument("unstorable_text", f"{label} contains a NUL character (PostgreSQL cannot store it)")
    if identifier:
        if not v:
            raise BadDocument("empty_identifier", f"{label} is empty")
        if len(v) > spec.MAX_IDENTIFIER_LENGTH:
            raise BadDocument("too_long", f"{label} has {len(v)} characters, at most {spec.MAX_IDENTIFIER_LENGTH}")
        if any(c < " " or c == "\x7f" for c in v):
            raise BadDocument("control_character", f"{label} = {_short(v)} contains a control character")
    return v


def text(doc: dict, name: str, label: str | None = None, nullable: bool = False,
         choices: frozenset[str] | tuple[str, ...] | None = None, identifier: bool = False) -> str | None:
    label = label or name
    v = required(doc, name, label)
    if v is None and nullable:
        return None
    if type(v) is not str:
        raise _type_error(label, v, "str")
    if choices is not None and v not in choices:
        raise BadDocument("out_of_range", f"{label} = {_short(v)} not one of {sorted(choices)}")
    return check_text(v, label, identifier)


def _as_datetime(v: Any, label: str) -> datetime:
    if isinstance(v, datetime):
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)  # pymongo without tz_aware: UTC
    if DatetimeMS and isinstance(v, DatetimeMS):  # outside Python's datetime range
        kind = "ts_before_2000" if int(v) < 0 else "ts_far_future"
        raise BadDocument(kind, f"{label} = {int(v)} ms since 1970 is outside the years 1-9999")
    if isinstance(v, str):
        try:
            parse_timestamp(v, label)
        except TimestampError:
            raise BadDocument("unparseable_ts", f"{label} = {_short(v)} is not a timestamp") from None
        raise BadDocument("wrong_type", f"{label} is the string {_short(v)}, expected a BSON datetime")
    raise _type_error(label, v, "datetime")


def timestamp(doc: dict, name: str, ctx: Context, label: str | None = None, nullable: bool = False,
              role: str = "measured") -> datetime | None:
    label = label or name
    v = required(doc, name, label)
    if v is None and nullable:
        return None
    return check_time(_as_datetime(v, label), label, ctx, role)


def check_time(v: datetime, label: str, ctx: Context, role: str = "measured") -> datetime:
    """``v`` judged for what the field means (iot_core.contract.TIME_ROLES; bucket ends: _bucket)."""
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    if role == "birth":
        if v > ctx.now:
            raise BadDocument("dob_in_future", f"{label} = {v.isoformat()} is in the future")
        earliest = ctx.now.replace(year=ctx.now.year - _DOB_MIN_YEARS, month=1, day=1)
        if v < earliest:
            raise BadDocument("out_of_range", f"{label} = {v.isoformat()} means an age over {spec.MAX_AGE_YEARS}")
        return v
    if v < MIN_TS:
        raise BadDocument("ts_before_2000", f"{label} = {v.isoformat()} is before {MIN_TS.date()}")
    if role == "measured" and v > ctx.max_ts:
        raise BadDocument("ts_far_future", f"{label} = {v.isoformat()} is after {ctx.max_ts.isoformat()} "
                                           f"(received + {FUTURE_TOLERANCE})")
    return v


def device_time(v: Any, label: str, ctx: Context) -> tuple[str, datetime]:
    """A device ``ts`` in any format of the contract: (the text raw keeps as sent, the UTC time)."""
    if type(v) in (dict, list):
        raise BadDocument("nested_junk", f"{label} is a nested {type(v).__name__}, expected a timestamp")
    try:
        parsed = parse_timestamp(v, label, ctx.naive_zone)
    except TimestampError as exc:
        raise BadDocument(exc.kind, exc.detail) from None
    if isinstance(v, str):
        sent = check_text(v, label)
    elif isinstance(v, datetime):
        sent = iso_utc(parsed.utc)
    else:
        sent = str(v.to_decimal() if isinstance(v, Decimal128) else v)
    return sent, check_time(parsed.utc, label, ctx)


def device(doc: dict, name: str, ctx: Context, collection: str) -> str:
    v = text(doc, name, identifier=True)
    if not ctx.is_known(v):
        raise BadDocument("unknown_device", f"{name} = {_short(v)} is not in the device registry")
    if isinstance(ctx.known_devices, Mapping):
        kind = ctx.known_devices[v]
        senders = spec.COLLECTIONS[collection].sender_kinds
        if kind not in senders:
            raise BadDocument("device_kind_mismatch",
                              f"{name} = {_short(v)} is registered as {kind or 'no valid kind'}; {collection} come "
                              f"from {' or '.join(senders)} devices")
    return v


def no_unknown_fields(doc: dict, allowed: frozenset[str], where: str) -> None:
    extra = [k for k in doc if k not in allowed and k not in IGNORED_FIELDS]
    if extra:
        names = sorted(_short(k) if len(k) > 40 else k for k in map(str, extra))
        raise BadDocument("nested_junk" if where != "document" else "wrong_type",
                          f"unexpected field(s) {names} in {where}")


def required_list(doc: dict, field_name: str) -> list:
    items = required(doc, field_name, field_name)
    if type(items) is not list:
        raise BadDocument("wrong_type", f"{field_name} is {_type_name(items)}, expected list")
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


def _allowed(fields: tuple[spec.Field, ...], meta: bool = True) -> frozenset[str]:
    return frozenset(f.name for f in fields) | (META_FIELDS if meta else frozenset())


# ------------------------------------------------------------------ collections
@dataclass
class Flattened:
    """Rows of one good document: the parent row and its child rows (time-series buckets)."""

    row: dict
    children: list[dict] = field(default_factory=list)


_AQ = spec.COLLECTIONS["air_quality"]
AIR_QUALITY_FIELDS = _allowed(_AQ.fields)


def flatten_air_quality(doc: dict, ctx: Context) -> Flattened:
    no_unknown_fields(doc, AIR_QUALITY_FIELDS, "document")
    row: dict[str, Any] = {"devid": device(doc, "devid", ctx, "air_quality")}
    row["ts"], row["ts_utc"] = device_time(required(doc, "ts", "ts"), "ts", ctx)
    row["ts_sent"] = text(doc, "ts_sent") if "ts_sent" in doc else None
    readings = required(doc, "readings", "readings")
    if type(readings) is not list:
        raise BadDocument("wrong_type", f"readings is {_type_name(readings)}, expected list")
    if len(readings) != len(AIR_QUALITY_MEASURES):
        raise BadDocument("readings_wrong_length",
                          f"readings has {len(readings)} values, expected {len(AIR_QUALITY_MEASURES)}")
    for name, value in zip(AIR_QUALITY_MEASURES, readings, strict=True):
        lo, hi = AIR_QUALITY_RANGES[name]
        if type(value) in (list, dict):
            raise BadDocument("nested_junk", f"readings[{name}] is a nested {type(value).__name__}")
        row[name] = check_number(value, f"readings[{name}]", lo, hi)
    return Flattened(row)


def _bucket(doc: dict, ctx: Context, collection: spec.Collection) -> dict:
    created = timestamp(doc, "created_at", ctx)
    ended = check_time(_as_datetime(required(doc, "ended_at", "ended_at"), "ended_at"), "ended_at", ctx,
                       role="bucket_end")
    if ended < created:
        raise BadDocument("out_of_range", f"ended_at {ended.isoformat()} is before created_at {created.isoformat()}")
    if ended - created > collection.bucket_span:
        raise BadDocument("bucket_too_long", f"ended_at - created_at = {ended - created}, a {collection.name} "
                                             f"bucket spans at most {collection.bucket_span}")
    return {"device_id": device(doc, "device_id", ctx, collection.name), "created_at": created, "ended_at": ended}


def _flatten_buckets(doc: dict, ctx: Context, item_fields: frozenset[str],
                     item: Callable[[dict, str, Context], dict],
                     fast_item: Callable[[dict, Context], dict | None] | None = None,
                     collection: spec.Collection | None = None) -> Flattened:
    collection = collection or _collection_of_items(item_fields)
    no_unknown_fields(doc, _BUCKET_FIELDS, "document")
    row = _bucket(doc, ctx, collection)
    items = doc.get("metrics")
    if type(items) is list and len(items) > collection.max_samples:
        # refused before looking at a single item: one sample per second of the span at most
        raise BadDocument("too_many_samples", f"metrics has {len(items):,} samples, a {collection.name} bucket "
                                              f"holds at most {collection.max_samples:,}")
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
    created, ended, at = row["created_at"], row["ended_at"], collection.sample_field
    for idx, child in enumerate(children):
        if not created <= child[at] <= ended:
            raise BadDocument("sample_outside_bucket",
                              f"metrics[{idx}].{at} = {child[at].isoformat()} is outside the bucket "
                              f"[{created.isoformat()}, {ended.isoformat()}]")
        child["idx"] = idx
    row["sample_count"] = len(children)
    return Flattened(row, children)


_HR = spec.COLLECTIONS["heart_rates"]
_STEPS = spec.COLLECTIONS["steps"]
_SLEEPS = spec.COLLECTIONS["sleeps"]
_BUCKET_FIELDS = _allowed(_HR.fields)
_HR_KEYS = _allowed(_HR.field("metrics").fields, meta=False)
_STEP_KEYS = _allowed(_STEPS.field("metrics").fields, meta=False)
_SLEEP_KEYS = _allowed(_SLEEPS.field("metrics").fields, meta=False)
BPM_RANGE = _HR.field("metrics").field("bpm").bounds
CONFIDENCE_RANGE = _HR.field("metrics").field("confidence").bounds
STEPS_RANGE = _STEPS.field("metrics").field("steps").bounds
DURATION_RANGE = _SLEEPS.field("metrics").field("duration").bounds


def _collection_of_items(item_fields: frozenset[str]) -> spec.Collection:
    return {_HR_KEYS: _HR, _STEP_KEYS: _STEPS, _SLEEP_KEYS: _SLEEPS}[item_fields]


def _plain_time(v: Any, ctx: Context) -> bool:
    return type(v) is datetime and v.tzinfo is not None and MIN_TS <= v <= ctx.max_ts


def _fast_heart_rate_item(m: dict, ctx: Context) -> dict | None:
    """The item's row when it is plainly valid (same rules as _heart_rate_item, no labels built)."""
    if type(m) is not dict or m.keys() != _HR_KEYS:
        return None
    ts, bpm, confidence = m["ts"], m["bpm"], m["confidence"]
    if not _plain_time(ts, ctx) or type(bpm) not in (int, float) or type(confidence) is not int:
        return None
    if not (BPM_RANGE[0] <= bpm <= BPM_RANGE[1] and CONFIDENCE_RANGE[0] <= confidence <= CONFIDENCE_RANGE[1]):
        return None  # NaN fails the comparison
    return {"ts": ts, "bpm": float(bpm), "confidence": float(confidence)}


def _fast_steps_item(m: dict, ctx: Context) -> dict | None:
    if type(m) is not dict or m.keys() != _STEP_KEYS:
        return None
    ts, steps = m["ts"], m["steps"]
    if not _plain_time(ts, ctx) or type(steps) is not int or not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
        return None
    return {"ts": ts, "steps": steps}


def _heart_rate_item(m: dict, where: str, ctx: Context) -> dict:
    return {"ts": timestamp(m, "ts", ctx, f"{where}.ts"),
            "bpm": number(m, "bpm", *BPM_RANGE, f"{where}.bpm"),
            "confidence": float(number(m, "confidence", *CONFIDENCE_RANGE, f"{where}.confidence", integral=True))}


def _steps_item(m: dict, where: str, ctx: Context) -> dict:
    return {"ts": timestamp(m, "ts", ctx, f"{where}.ts"),
            "steps": number(m, "steps", *STEPS_RANGE, f"{where}.steps", integral=True)}


def _sleep_item(m: dict, where: str, ctx: Context) -> dict:
    start = timestamp(m, "start_ts", ctx, f"{where}.start_ts")
    end = timestamp(m, "end_ts", ctx, f"{where}.end_ts")
    if end < start:
        raise BadDocument("out_of_range", f"{where}.end_ts is before {where}.start_ts")
    duration = number(m, "duration", *DURATION_RANGE, f"{where}.duration", integral=True)
    if abs(timedelta(milliseconds=duration) - (end - start)) > spec.SLEEP_DURATION_SLACK:
        raise BadDocument("duration_mismatch", f"{where}.duration = {duration} ms, but end_ts - start_ts = "
                                               f"{(end - start) // timedelta(milliseconds=1)} ms")
    return {"start_ts": start, "end_ts": end, "duration": duration}


def flatten_heart_rates(doc: dict, ctx: Context) -> Flattened:
    return _flatten_buckets(doc, ctx, _HR_KEYS, _heart_rate_item, _fast_heart_rate_item, _HR)


def flatten_steps(doc: dict, ctx: Context) -> Flattened:
    return _flatten_buckets(doc, ctx, _STEP_KEYS, _steps_item, _fast_steps_item, _STEPS)


def flatten_sleeps(doc: dict, ctx: Context) -> Flattened:
    return _flatten_buckets(doc, ctx, _SLEEP_KEYS, _sleep_item, None, _SLEEPS)


_USERS = spec.COLLECTIONS["users"]
GENDERS = frozenset(spec.GENDERS)
USER_FIELDS = _allowed(_USERS.fields)


def completed_years(born: datetime, at: datetime) -> int:
    """Whole years from ``born`` to ``at`` (an age)."""
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def flatten_users(doc: dict, ctx: Context) -> Flattened:
    no_unknown_fields(doc, USER_FIELDS, "document")
    row = {"user_id": text(doc, "user_id", identifier=True),
           "age": number(doc, "age", *_USERS.field("age").bounds, integral=True),
           "height": number(doc, "height", *_USERS.field("height").bounds, integral=True),
           "gender": text(doc, "gender", choices=GENDERS),
           "email": text(doc, "email")}
    if "@" not in row["email"]:
        raise BadDocument("wrong_type", f"email {_short(row['email'])} is not an e-mail address")
    row["dob"] = timestamp(doc, "dob", ctx, role="birth")
    row["created_at"] = timestamp(doc, "created_at", ctx)
    for consent in spec.CONSENT_FIELDS:
        row[consent] = timestamp(doc, consent, ctx, nullable=True, role="valid_from")
    # the age is a snapshot taken between the profile's creation and now
    youngest = completed_years(row["dob"], min(row["created_at"], ctx.now)) - spec.AGE_SLACK_YEARS
    oldest = completed_years(row["dob"], ctx.now) + spec.AGE_SLACK_YEARS
    if not youngest <= row["age"] <= oldest:
        raise BadDocument("age_mismatch", f"age {row['age']} contradicts dob {row['dob'].date()} "
                                          f"(between {youngest} and {oldest} years)")
    devices = required_list(doc, "devices")
    for i, d in enumerate(devices):
        if type(d) is not str:
            raise BadDocument("nested_junk", f"devices[{i}] is {type(d).__name__}, expected str")
        check_text(d, f"devices[{i}]", identifier=True)
        if not ctx.is_known(d):
            raise BadDocument("unknown_device", f"devices[{i}] = {_short(d)} is not in the device registry")
    row["devices"] = list(devices)
    return Flattened(row)


_DEVICES = spec.COLLECTIONS["devices"]
DEVICE_KINDS = frozenset(spec.DEVICE_KINDS)
DEVICE_ACTIONS = frozenset(spec.DEVICE_ACTIONS)
DEVICE_FIELDS = _allowed(_DEVICES.fields)
_LOCATION = _DEVICES.field("location")
_MANUFACTURER = _DEVICES.field("manufacturer")
_HISTORY = _DEVICES.field("history")
LOCATION_FIELDS = _allowed(_LOCATION.fields, meta=False)
HISTORY_FIELDS = _allowed(_HISTORY.fields, meta=False)


def _optional_text(doc: dict, name: str, label: str, number_ok: bool = False) -> str | None:
    v = doc.get(name)
    if v is None:
        return None
    if type(v) is not str:
        if number_ok and type(v) is not bool and isinstance(v, int | float | Decimal128):
            # floor 3 / room 12 are fine as numbers
            return str(check_number(v, label, None, None, integral=type(v) is not float))
        raise _type_error(label, v, "str")
    return check_text(v, label)


def _object(doc: dict, name: str, allowed: frozenset[str]) -> dict | None:
    v = doc.get(name)
    if v is None:
        return None
    if type(v) is not dict:
        raise BadDocument("wrong_type", f"{name} is {_type_name(v)}, expected an object")
    no_unknown_fields(v, allowed, name)
    return v


def _history_event(h: Any, i: int, ctx: Context) -> dict:
    where = f"history[{i}]"
    if type(h) is not dict:
        raise BadDocument("nested_junk", f"{where} is {type(h).__name__}, expected an object")
    no_unknown_fields(h, HISTORY_FIELDS, where)
    event: dict[str, Any] = {"ts": iso_utc(timestamp(h, "ts", ctx, f"{where}.ts")),
                             "action": text(h, "action", f"{where}.action", choices=DEVICE_ACTIONS)}
    # stage casts these (stg_device_history): a "T-17" here would stop every stage build
    tech = _HISTORY.field("technician_id")
    if "technician_id" in h:
        v = h["technician_id"]
        event["technician_id"] = None if v is None else check_number(v, f"{where}.technician_id", *tech.bounds,
                                                                      integral=True)
    if "notes" in h:
        event["notes"] = _optional_text(h, "notes", f"{where}.notes")
    return event


def flatten_devices(doc: dict, ctx: Context) -> Flattened:
    no_unknown_fields(doc, DEVICE_FIELDS, "document")
    row = {"device_id": text(doc, "device_id", identifier=True),
           "kind": text(doc, "kind", choices=DEVICE_KINDS),
           "owner_user_id": text(doc, "owner_user_id", nullable=True, identifier=True)}
    location = _object(doc, "location", LOCATION_FIELDS)
    if location is not None:
        row["lat"] = number(location, "lat", *_LOCATION.field("lat").bounds, "location.lat")
        row["long"] = number(location, "long", *_LOCATION.field("long").bounds, "location.long")
        row["location_description"] = _optional_text(location, "description", "location.description")
        for name in ("building", "floor", "room"):
            row[name] = _optional_text(location, name, f"location.{name}", number_ok=True)
    else:
        row.update(lat=None, long=None, location_description=None, building=None, floor=None, room=None)
    manufacturer = _object(doc, "manufacturer", _allowed(_MANUFACTURER.fields, meta=False))
    if manufacturer is None:
        raise BadDocument("missing_field", "manufacturer is missing")
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
        raise BadDocument("wrong_type", f"history is {_type_name(history)}, expected list")
    row["history"] = [_history_event(h, i, ctx) for i, h in enumerate(history)]
    return Flattened(row)


FLATTENERS: dict[str, Callable[[dict, Context], Flattened]] = {
    "air_quality": flatten_air_quality,
    "heart_rates": flatten_heart_rates,
    "steps": flatten_steps,
    "sleeps": flatten_sleeps,
    "users": flatten_users,
    "devices": flatten_devices,
}
assert set(FLATTENERS) == set(spec.COLLECTIONS), "every collection of the contract has a flattener"
# Writes MongoDB refused (duplicate_id); every document there is quarantined, never loaded.
REJECTED_WRITES = "rejected_writes"
COLLECTIONS = (*FLATTENERS, REJECTED_WRITES)
# Collections whose documents reference a device of the registry.
DEVICE_CHECKED = frozenset({"air_quality", "heart_rates", "steps", "sleeps", "users"})


def flatten(collection: str, doc: dict, ctx: Context) -> Flattened:
    """Rows of a good document; raises :class:`BadDocument` with the quarantine reason otherwise."""
    if collection == REJECTED_WRITES:
        target = doc.get("collection", "?")
        why = doc.get("reason")
        detail = f" ({_short(why)})" if isinstance(why, str) and why else ""
        raise BadDocument("duplicate_id", f"MongoDB refused a second write of an existing _id to {target}{detail}")
    if type(doc.get("_id")) is not str:
        raise BadDocument("wrong_type", f"_id is {type(doc.get('_id')).__name__}, expected str")
    ensure_not_empty(doc)
    return FLATTENERS[collection](doc, ctx)
