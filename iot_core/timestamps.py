"""Device timestamps to UTC: the one parser of the platform (formats in iot_core.contract).

Accepted, whatever the field: ISO 8601 with a UTC offset or ``Z``; HTTP dates (RFC 1123 /
IMF-fixdate, ``Tue, 07 Feb 2023 11:29:19 GMT``, what seed 000's devices send); unix seconds and
unix milliseconds, as numbers or digit strings (milliseconds from ``UNIX_MILLIS_FROM`` on); BSON
datetimes. A time without an offset is refused (``ts_without_offset``) unless the caller names
the zone the device's clock runs in. Offsets outside the ones that exist on Earth are refused.

Only the format is judged here; whether the time is plausible (not before 2000, not in the
future) is the contract's business (``dlt_pipelines.contract``), because it depends on the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from iot_core.contract import UNIX_MILLIS_FROM, UTC_OFFSET_MAX, UTC_OFFSET_MIN

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), start=1)}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# RFC 1123 as HTTP uses it (IMF-fixdate), also with a numeric zone as RFC 5322 allows; the weekday
# is optional there, and must be right when present.
_HTTP_DATE = re.compile(
    r"^(?:(?P<weekday>Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s+)?(?P<day>\d{1,2})\s+(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|"
    r"Aug|Sep|Oct|Nov|Dec)\s+(?P<year>\d{4})\s+(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\s+"
    r"(?P<zone>GMT|UTC|UT|Z|[+-]\d{4})$")
_UNIX = re.compile(r"^[+-]?\d+(\.\d+)?$")
# what may start an ISO 8601 date-time: four digits of the year
_ISO_START = re.compile(r"^\d{4}")


class TimestampError(ValueError):
    """``kind``: unparseable_ts | ts_without_offset | ts_offset_out_of_range | ts_before_2000 |
    ts_far_future | wrong_type; ``str(exc)`` is ``"<kind>: <detail>"``."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Parsed:
    utc: datetime      # aware, UTC
    format: str        # a key of iot_core.contract.TIMESTAMP_FORMATS


def parse_timestamp(value: Any, label: str = "ts", naive_zone: tzinfo | None = None) -> Parsed:
    """``value`` as an aware UTC datetime and the format it was in; raises TimestampError."""
    if isinstance(value, datetime):
        # pymongo decodes BSON datetimes naive (UTC) unless tz_aware: either way they are UTC
        return Parsed((value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC), "bson_datetime")
    if isinstance(value, bool):
        raise TimestampError("wrong_type", f"{label} is a bool, expected a timestamp")
    if isinstance(value, int | float | Decimal) or type(value).__name__ in ("Int64", "Decimal128"):
        return _unix(_as_decimal(value, label), label, repr(value))
    if not isinstance(value, str):
        raise TimestampError("wrong_type", f"{label} is {type(value).__name__}, expected a timestamp")
    text = value.strip()
    if not text:
        raise TimestampError("unparseable_ts", f"{label} is empty")
    if _UNIX.match(text):
        return _unix(Decimal(text), label, repr(value))
    if _ISO_START.match(text):
        return _iso(text, label, value, naive_zone)
    match = _HTTP_DATE.match(text)
    if match:
        return _http_date(match, label, value)
    raise TimestampError("unparseable_ts", f"{label} = {_short(value)} is not a timestamp "
                                           "(ISO 8601 with offset, HTTP date, or unix seconds / milliseconds)")


def to_utc(value: Any, label: str = "ts", naive_zone: tzinfo | None = None) -> datetime:
    return parse_timestamp(value, label, naive_zone).utc


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with ``Z``; microseconds only when there are any."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_decimal(value: Any, label: str) -> Decimal:
    if type(value).__name__ == "Decimal128":
        value = value.to_decimal()
    if isinstance(value, float) and not math.isfinite(value):
        raise TimestampError("unparseable_ts", f"{label} is {value}")
    try:
        number = Decimal(value) if not isinstance(value, float) else Decimal(repr(value))
    except (InvalidOperation, ValueError):
        raise TimestampError("unparseable_ts", f"{label} = {_short(value)} is not a number") from None
    if not number.is_finite():
        raise TimestampError("unparseable_ts", f"{label} is {number}")
    return number


_MAX_SECONDS = Decimal((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH).total_seconds())


def _unix(number: Decimal, label: str, shown: str) -> Parsed:
    fmt = "unix_millis" if abs(number) >= UNIX_MILLIS_FROM else "unix_seconds"
    seconds = number / 1000 if fmt == "unix_millis" else number
    if seconds < 0:
        raise TimestampError("ts_before_2000", f"{label} = {shown} is before 1970")
    if seconds > _MAX_SECONDS:
        raise TimestampError("ts_far_future", f"{label} = {shown} is after the year 9999")
    micros = int((seconds * 1_000_000).to_integral_value())
    return Parsed(_EPOCH + timedelta(microseconds=micros), fmt)


def _check_offset(offset: timedelta | None, label: str, value: Any) -> None:
    if offset is None:
        return
    if offset % timedelta(minutes=1):
        raise TimestampError("ts_offset_out_of_range", f"{label} = {_short(value)} has an offset with seconds")
    if not UTC_OFFSET_MIN <= offset <= UTC_OFFSET_MAX:
        raise TimestampError("ts_offset_out_of_range",
                             f"{label} = {_short(value)} has a UTC offset outside -12:00..+14:00")


def _iso(text: str, label: str, value: Any, naive_zone: tzinfo | None) -> Parsed:
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        raise TimestampError("unparseable_ts", f"{label} = {_short(value)} is not a valid ISO 8601 time") from None
    if "T" not in text.upper() and " " not in text:
        raise TimestampError("unparseable_ts", f"{label} = {_short(value)} is a date without a time")
    if moment.tzinfo is None:
        if naive_zone is None:
            raise TimestampError("ts_without_offset",
                                 f"{label} = {_short(value)} has no UTC offset (send one, e.g. Z or +01:00)")
        moment = moment.replace(tzinfo=naive_zone)
    _check_offset(moment.utcoffset(), label, value)
    return Parsed(moment.astimezone(UTC), "iso8601")


def _http_date(match: re.Match, label: str, value: Any) -> Parsed:
    g = match.groupdict()
    try:
        local = datetime(int(g["year"]), _MONTHS[g["month"]], int(g["day"]), int(g["hour"]), int(g["minute"]),
                         int(g["second"] or 0))
    except ValueError:
        raise TimestampError("unparseable_ts", f"{label} = {_short(value)} is not a valid date") from None
    if g["weekday"] and _WEEKDAYS[local.weekday()] != g["weekday"]:
        raise TimestampError("unparseable_ts", f"{label} = {_short(value)}: the weekday does not match the date")
    zone = g["zone"]
    offset = timedelta()
    if zone[0] in "+-":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * (-1 if zone[0] == "-" else 1)
        _check_offset(offset, label, value)
    return Parsed((local - offset).replace(tzinfo=UTC), "http_date")
