"""The data contract of the MongoDB collections: the one definition every layer derives from.

What a valid document of each collection looks like: its fields, their BSON types, units and
valid ranges, the measure names and their order in an air-quality payload, the timestamp formats
a device may send and how far in the future a measurement may lie, which device kinds may send
which collection, and which fields hold personal data. Plain data, no logic beyond lookups:

- the extract (``dlt_pipelines/contract.py`` and its vectorised fast paths) validates with it,
- the API's ``PUT /sensorsdata`` runs the extract's validation on the payload,
- dbt reads it through generated macros (``dbt_project/macros/contract.sql``,
  ``python -m dbt_project.contract_macros --write``),
- the Great Expectations suite (``quality/checkpoint.py``) is built from it,
- the privacy work finds what to erase through :data:`PERSONAL_FIELDS`.

``python -m iot_core.contract`` prints it as JSON. ``tests/iot_core/test_contract_drift.py`` fails when
any layer disagrees with it. The choices where the layers had drifted apart, with the reasons,
are in docs/contracts.md ("Settled values").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# ------------------------------------------------------------------ time
# No device of this platform measured anything before 2000: earlier times are clock resets
# (1970-01-01) or garbage.
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
# A *measurement* time (a reading's ts, a sample, a bucket start, a record's creation) may lie at
# most this far after the moment the platform received it. Device clocks are NTP-synced to
# seconds; an hour covers a drifting clock, while a device that labels local time as UTC (hours
# off) is caught. "Valid from" dates (consent) and bucket ends are not measurement times.
FUTURE_TOLERANCE = timedelta(hours=1)
# UTC offsets that exist on Earth: UTC-12:00 (Baker Island) to UTC+14:00 (Line Islands).
UTC_OFFSET_MIN = timedelta(hours=-12)
UTC_OFFSET_MAX = timedelta(hours=14)
# Unix numbers at or above this are milliseconds (as seconds it would be the year 5138).
UNIX_MILLIS_FROM = 100_000_000_000

# Timestamp formats a device may send in ``air_quality.ts`` (iot_core.timestamps parses them).
TIMESTAMP_FORMATS = {
    "iso8601": "ISO 8601 with a UTC offset or Z, e.g. 2026-11-20T10:00:00+01:00",
    "http_date": "HTTP date (RFC 1123 / IMF-fixdate), e.g. Tue, 07 Feb 2023 11:29:19 GMT (seed 000's devices)",
    "unix_seconds": "unix seconds, as a number or a string of digits, e.g. 1675769359 or 1675769359.5",
    "unix_millis": f"unix milliseconds (values from {UNIX_MILLIS_FROM:,} on), e.g. 1675769359000",
    "bson_datetime": "a BSON datetime (always UTC)",
}
# A naive time (no offset, no zone) is refused unless the setting DEVICE_TIMEZONE names the zone
# the devices' clocks run in.
NAIVE_TIMESTAMP_POLICY = "reject unless DEVICE_TIMEZONE is set"

# How a datetime field is judged (Field.time_role):
#   measured    when something was measured or happened: MIN_TS .. received + FUTURE_TOLERANCE
#   valid_from  the date from which something holds (consent): MIN_TS .. any future date
#   birth       a date of birth: not in the future, not more than MAX_AGE_YEARS + 1 years ago
#   bucket_end  end of a time bucket: not before its start, at most the bucket's span after it
TIME_ROLES = ("measured", "valid_from", "birth", "bucket_end")

# ------------------------------------------------------------------ numbers
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
# The oldest verified human reached 122: 130 leaves room without admitting nonsense.
MAX_AGE_YEARS = 130
# Age and date of birth may disagree by this many years (the age is a snapshot taken at some
# time between the profile's creation and now; birthdays and zones blur the edges).
AGE_SLACK_YEARS = 1
# A sleep's reported duration may differ this much from end - start (devices round to the minute).
SLEEP_DURATION_SLACK = timedelta(minutes=1)

# Identifiers (device and user ids) and choice values: at most this long, no control characters.
MAX_IDENTIFIER_LENGTH = 128


# ------------------------------------------------------------------ the model
@dataclass(frozen=True)
class Measure:
    """One of the values of an air-quality payload, in payload order."""

    name: str
    unit: str
    minimum: float
    maximum: float
    description: str


@dataclass(frozen=True)
class Field:
    """One field of a document (or of an object nested in it).

    ``type``: ``str`` | ``int`` (any integer encoding: int32, int64, an integral double or
    Decimal128 within int64) | ``number`` (int, double or Decimal128; finite) | ``bool`` |
    ``datetime`` (BSON datetime) | ``device_time`` (any of TIMESTAMP_FORMATS) | ``list`` |
    ``object``. ``items``: the type of a list's items (a type name, or ``fields`` of objects).
    ``personal``: the kind of personal data the field holds (see PERSONAL_CATEGORIES).
    """

    name: str
    type: str
    required: bool = True
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    unit: str | None = None
    time_role: str | None = None
    identifier: bool = False
    fields: tuple[Field, ...] = ()
    items: str | None = None
    personal: str | None = None
    raw_column: str | None = None  # the column in raw when it is not the field's name
    description: str = ""

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        return self.minimum, self.maximum

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")


@dataclass(frozen=True)
class Collection:
    name: str
    fields: tuple[Field, ...]
    natural_key: tuple[str, ...]
    description: str
    # the field naming the device that sent the document, and the device kinds that may send it
    device_field: str | None = None
    sender_kinds: tuple[str, ...] = ()
    # bucket collections: the longest span of a bucket; samples lie inside [created_at, ended_at]
    bucket_span: timedelta | None = None
    sample_field: str | None = None

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    @property
    def max_samples(self) -> int | None:
        """At most one sample per second of the bucket's span (both ends included)."""
        return None if self.bucket_span is None else int(self.bucket_span.total_seconds()) + 1


MEASURES: tuple[Measure, ...] = (
    Measure("iaq", "index", 0, 500, "Indoor air-quality index (Bosch BME680 scale)"),
    Measure("temperature", "°C", -40, 85, "Air temperature"),
    Measure("humidity", "%RH", 0, 100, "Relative humidity"),
    Measure("pressure", "kPa", 30, 110, "Barometric pressure"),
    Measure("voc", "ppm", 0, 1000, "Volatile organic compounds (breath-VOC equivalent)"),
    Measure("co2", "ppm", 0, 40_000, "CO2 equivalent"),
    Measure("iaq_accuracy", "level", 0, 3, "Calibration state of the IAQ estimate (0 = unreliable, 3 = high)"),
)
MEASURE_NAMES: tuple[str, ...] = tuple(m.name for m in MEASURES)

DEVICE_KINDS = ("watch", "phone", "air_quality")
DEVICE_ACTIONS = ("INSTALLED", "CALIBRATED", "FIRMWARE_UPGRADED", "DECOMMISSIONED")
GENDERS = ("male", "female", "other")
CONSENT_FIELDS = ("share_with_research_asof", "share_with_public_asof", "share_with_friends_asof")

# Personal data categories (PERSONAL_FIELDS): what the privacy work erases or pseudonymises.
PERSONAL_CATEGORIES = {
    "user_id": "identifies a user",
    "email": "an e-mail address",
    "date_of_birth": "a date of birth",
    "device_id": "identifies a device; personal when the device belongs to a user (watch, phone)",
    "device_address": "a hardware address (MAC) of a device",
}


def _bucket_fields(device_field: str, item_fields: tuple[Field, ...]) -> tuple[Field, ...]:
    return (
        Field(device_field, "str", identifier=True, personal="device_id", description="the sending device"),
        Field("created_at", "datetime", time_role="measured", description="bucket start"),
        Field("ended_at", "datetime", time_role="bucket_end", description="bucket end"),
        Field("metrics", "list", fields=item_fields, description="the samples of the bucket"),
    )


COLLECTIONS: dict[str, Collection] = {c.name: c for c in (
    Collection(
        "air_quality",
        (
            Field("devid", "str", identifier=True, personal="device_id", description="the sending sensor"),
            Field("ts", "device_time", time_role="measured", raw_column="ts",
                  description="time of the measure, as the device sent it (any of TIMESTAMP_FORMATS); "
                              "raw also keeps it normalised to UTC in ts_utc"),
            Field("ts_sent", "str", required=False,
                  description="the ts exactly as the device sent it, when the API normalised ts to ISO 8601 UTC"),
            Field("readings", "list", items="number",
                  description="the 7 measures in MEASURES order: " + ", ".join(MEASURE_NAMES)),
        ),
        natural_key=("devid", "ts"),
        description="one document per reading (seed 000's device payload)",
        device_field="devid", sender_kinds=("air_quality",),
    ),
    Collection(
        "heart_rates",
        _bucket_fields("device_id", (
            Field("ts", "datetime", time_role="measured"),
            Field("bpm", "number", minimum=20, maximum=250, unit="beats/min"),
            Field("confidence", "int", minimum=0, maximum=3, unit="level"),
        )),
        natural_key=("device_id", "created_at"),
        description="4-hour buckets of heart-rate samples (seed 001)",
        device_field="device_id", sender_kinds=("watch",),
        bucket_span=timedelta(hours=4), sample_field="ts",
    ),
    Collection(
        "steps",
        _bucket_fields("device_id", (
            Field("ts", "datetime", time_role="measured"),
            Field("steps", "int", minimum=0, maximum=400, unit="steps/min"),
        )),
        natural_key=("device_id", "created_at"),
        description="15-minute buckets of per-minute step counts (seed 001)",
        device_field="device_id", sender_kinds=("watch", "phone"),
        bucket_span=timedelta(minutes=15), sample_field="ts",
    ),
    Collection(
        "sleeps",
        _bucket_fields("device_id", (
            Field("start_ts", "datetime", time_role="measured"),
            Field("end_ts", "datetime", time_role="measured"),
            Field("duration", "int", minimum=0, maximum=86_400_000, unit="ms",
                  description="end_ts - start_ts (within SLEEP_DURATION_SLACK)"),
        )),
        natural_key=("device_id", "created_at"),
        description="15-minute buckets of the sleeps that ended in them (seed 001)",
        device_field="device_id", sender_kinds=("watch", "phone"),
        bucket_span=timedelta(minutes=15), sample_field="end_ts",
    ),
    Collection(
        "users",
        (
            Field("user_id", "str", identifier=True, personal="user_id"),
            Field("age", "int", minimum=0, maximum=MAX_AGE_YEARS, unit="years",
                  description="agrees with dob within AGE_SLACK_YEARS"),
            Field("height", "int", minimum=30, maximum=272, unit="cm"),
            Field("gender", "str", choices=GENDERS),
            Field("email", "str", personal="email", description="contains an @"),
            Field("dob", "datetime", time_role="birth", personal="date_of_birth"),
            Field("created_at", "datetime", time_role="measured", description="when the profile was created"),
            Field("devices", "list", items="str", personal="device_id", description="device ids of the user"),
            *(Field(name, "datetime", nullable=True, time_role="valid_from",
                    description="consent holds from this date on; null = never agreed")
              for name in CONSENT_FIELDS),
        ),
        natural_key=("user_id",),
        description="user profiles with consent dates (seed 002)",
    ),
    Collection(
        "devices",
        (
            Field("device_id", "str", identifier=True, personal="device_id"),
            Field("kind", "str", choices=DEVICE_KINDS),
            Field("owner_user_id", "str", nullable=True, identifier=True, personal="user_id"),
            Field("location", "object", required=False, nullable=True, fields=(
                Field("lat", "number", minimum=-90, maximum=90, unit="degrees"),
                Field("long", "number", minimum=-180, maximum=180, unit="degrees"),
                Field("description", "str", required=False, nullable=True, raw_column="location_description"),
                *(Field(name, "str_or_number", required=False, nullable=True)
                  for name in ("building", "floor", "room")),
            )),
            Field("manufacturer", "object", fields=(
                Field("name", "str", raw_column="manufacturer_name"),
                Field("website", "str", required=False, nullable=True, raw_column="manufacturer_website"),
            )),
            Field("model", "str"),
            Field("mac", "str", personal="device_address"),
            Field("installed_at", "datetime", time_role="measured"),
            Field("history", "list", required=False, fields=(
                Field("ts", "datetime", time_role="measured"),
                Field("action", "str", choices=DEVICE_ACTIONS),
                Field("technician_id", "int", required=False, nullable=True, minimum=0, maximum=INT64_MAX),
                Field("notes", "str", required=False, nullable=True),
            )),
            Field("active", "bool"),
        ),
        natural_key=("device_id",),
        description="device registry: kind, owner or location, manufacturer, history (seed 004)",
    ),
)}

# Fields every document may carry besides its collection's: the key and the writer's stamp.
META_FIELDS = ("_id", "_ingested_at")
# Set by the generators' bad documents for the tests; never read to decide anything.
TEST_MARKER_FIELDS = ("_test_bad_kind",)


def collection(name: str) -> Collection:
    return COLLECTIONS[name]


def measure(name: str) -> Measure:
    for m in MEASURES:
        if m.name == name:
            return m
    raise KeyError(name)


def field_at(path: str) -> Field:
    """The field at ``"collection.field[.nested]"``, e.g. ``heart_rates.metrics.bpm``."""
    name, *parts = path.split(".")
    node: Collection | Field = COLLECTIONS[name]
    for part in parts:
        node = node.field(part)
    return node  # type: ignore[return-value]


# ------------------------------------------------------------------ personal data
@dataclass(frozen=True)
class PersonalField:
    collection: str
    path: str          # dotted path in the document ("devices" is a list of ids)
    category: str      # a key of PERSONAL_CATEGORIES
    raw_table: str     # where the extract puts it
    raw_column: str


def _walk(fields: tuple[Field, ...], prefix: str = "") -> Iterator[tuple[str, Field]]:
    for f in fields:
        path = f"{prefix}{f.name}"
        yield path, f
        yield from _walk(f.fields, path + ".")


def _personal_fields() -> tuple[PersonalField, ...]:
    out = []
    for c in COLLECTIONS.values():
        for path, f in _walk(c.fields):
            if f.personal:
                nested_list = "." in path and c.field(path.split(".")[0]).type == "list"
                table = f"raw.{c.name}__metrics" if nested_list and c.bucket_span else f"raw.{c.name}"
                out.append(PersonalField(c.name, path, f.personal, table, f.raw_column or f.name))
    # the registries' keys are their natural keys: _id holds the user / device id too
    out.append(PersonalField("users", "_id", "user_id", "raw.users", "_id"))
    out.append(PersonalField("devices", "_id", "device_id", "raw.devices", "_id"))
    return tuple(out)


PERSONAL_FIELDS: tuple[PersonalField, ...] = _personal_fields()


# ------------------------------------------------------------------ export
def as_dict() -> dict:
    """The whole contract as plain JSON-able data."""
    def f_dict(f: Field) -> dict:
        d = {k: v for k, v in vars(f).items() if v not in (None, (), False, "") and k != "fields"}
        d["required"] = f.required
        if f.fields:
            d["fields"] = [f_dict(x) for x in f.fields]
        return d

    return {
        "min_ts": MIN_TS.isoformat(),
        "future_tolerance_seconds": FUTURE_TOLERANCE.total_seconds(),
        "utc_offset_range": [str(UTC_OFFSET_MIN), str(UTC_OFFSET_MAX)],
        "timestamp_formats": TIMESTAMP_FORMATS,
        "naive_timestamps": NAIVE_TIMESTAMP_POLICY,
        "unix_millis_from": UNIX_MILLIS_FROM,
        "max_age_years": MAX_AGE_YEARS,
        "age_slack_years": AGE_SLACK_YEARS,
        "sleep_duration_slack_seconds": SLEEP_DURATION_SLACK.total_seconds(),
        "max_identifier_length": MAX_IDENTIFIER_LENGTH,
        "measures": [vars(m) for m in MEASURES],
        "collections": {
            c.name: {
                "description": c.description, "natural_key": list(c.natural_key),
                "device_field": c.device_field, "sender_kinds": list(c.sender_kinds),
                "bucket_span_seconds": c.bucket_span.total_seconds() if c.bucket_span else None,
                "max_samples": c.max_samples, "sample_field": c.sample_field,
                "fields": [f_dict(f) for f in c.fields],
            } for c in COLLECTIONS.values()},
        "meta_fields": list(META_FIELDS),
        "personal_categories": PERSONAL_CATEGORIES,
        "personal_fields": [vars(p) for p in PERSONAL_FIELDS],
    }


if __name__ == "__main__":
    print(json.dumps(as_dict(), indent=2, ensure_ascii=False))
