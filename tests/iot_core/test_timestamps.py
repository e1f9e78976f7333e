"""The one timestamp parser (iot_core.timestamps): every format of the contract, and a clear
reason for everything else. Pure Python: no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from iot_core.timestamps import TimestampError, iso_utc, parse_timestamp

SEED_000 = datetime(2023, 2, 7, 11, 29, 19, tzinfo=UTC)


@pytest.mark.parametrize("value, expected, fmt", [
    ("2026-11-20T12:00:00+02:00", datetime(2026, 11, 20, 10, tzinfo=UTC), "iso8601"),
    ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC), "iso8601"),
    ("2026-11-20T10:00:00z", datetime(2026, 11, 20, 10, tzinfo=UTC), "iso8601"),
    ("2026-11-20T10:00:00.250Z", datetime(2026, 11, 20, 10, 0, 0, 250_000, tzinfo=UTC), "iso8601"),
    ("2026-11-20 10:00+05:30", datetime(2026, 11, 20, 4, 30, tzinfo=UTC), "iso8601"),
    ("2026-11-20T10:00:00-12:00", datetime(2026, 11, 20, 22, tzinfo=UTC), "iso8601"),
    ("2026-11-20T10:00:00+14:00", datetime(2026, 11, 19, 20, tzinfo=UTC), "iso8601"),
    (" 2026-11-20T10:00:00Z ", datetime(2026, 11, 20, 10, tzinfo=UTC), "iso8601"),
    ("Tue, 07 Feb 2023 11:29:19 GMT", SEED_000, "http_date"),            # seed 000's devices
    ("07 Feb 2023 11:29:19 GMT", SEED_000, "http_date"),
    ("Tue, 7 Feb 2023 12:29:19 +0100", SEED_000, "http_date"),
    ("1675769359", SEED_000, "unix_seconds"),
    ("1675769359.25", SEED_000 + timedelta(milliseconds=250), "unix_seconds"),
    ("1675769359000", SEED_000, "unix_millis"),
    (1675769359, SEED_000, "unix_seconds"),
    (1675769359.5, SEED_000 + timedelta(milliseconds=500), "unix_seconds"),
    (Int64(1675769359000), SEED_000, "unix_millis"),
    (Decimal128("1675769359"), SEED_000, "unix_seconds"),
    (SEED_000, SEED_000, "bson_datetime"),
    (SEED_000.replace(tzinfo=None), SEED_000, "bson_datetime"),           # pymongo without tz_aware: UTC
])
def test_every_format_of_the_contract_parses_to_utc(value, expected, fmt):
    parsed = parse_timestamp(value)
    assert parsed.utc == expected and parsed.utc.tzinfo is UTC and parsed.format == fmt


@pytest.mark.parametrize("value, kind", [
    ("2026-11-20T10:00:00", "ts_without_offset"),              # no zone: ambiguous, never guessed
    ("2026-11-20 10:00", "ts_without_offset"),
    ("2026-02-30T10:00:00Z", "unparseable_ts"),                # impossible date
    ("2026-11-20T24:00:00Z", "unparseable_ts"),
    ("2026-11-20T10:00:00+15:00", "ts_offset_out_of_range"),   # no such zone on Earth
    ("2026-11-20T10:00:00-12:30", "ts_offset_out_of_range"),
    ("2026-11-20T10:00:00+01:00:30", "ts_offset_out_of_range"),
    ("Wed, 07 Feb 2023 11:29:19 GMT", "unparseable_ts"),       # the weekday contradicts the date
    ("Tue, 30 Feb 2023 11:29:19 GMT", "unparseable_ts"),
    ("Tue, 07 Feb 2023 11:29:19 +1500", "ts_offset_out_of_range"),
    ("2026-11-20", "unparseable_ts"),                          # a date is not a time
    ("yesterday at noon", "unparseable_ts"),
    ("32/13/2026 25:61", "unparseable_ts"),
    ("", "unparseable_ts"),
    ("1.6e9", "unparseable_ts"),
    ("-5", "ts_before_2000"),
    (10 ** 20, "ts_far_future"),
    (float("nan"), "unparseable_ts"),
    (Decimal128("Infinity"), "unparseable_ts"),
    (True, "wrong_type"),
    ([1675769359], "wrong_type"),
])
def test_everything_else_gets_a_reason(value, kind):
    with pytest.raises(TimestampError) as exc:
        parse_timestamp(value)
    assert exc.value.kind == kind
    assert str(exc.value).startswith(f"{kind}: ")


def test_a_configured_device_zone_places_naive_times():
    london = ZoneInfo("Europe/London")
    assert parse_timestamp("2026-07-01T12:00:00", naive_zone=london).utc == datetime(2026, 7, 1, 11, tzinfo=UTC)
    assert parse_timestamp("2026-12-01T12:00:00", naive_zone=london).utc == datetime(2026, 12, 1, 12, tzinfo=UTC)
    # a time with its own offset keeps it
    assert parse_timestamp("2026-07-01T12:00:00Z", naive_zone=london).utc == datetime(2026, 7, 1, 12, tzinfo=UTC)


def test_seconds_and_milliseconds_are_told_apart_by_size():
    # 99,999,999,999 s is the year 5138; from 100,000,000,000 on a number is milliseconds
    assert parse_timestamp(99_999_999_999).format == "unix_seconds"
    assert parse_timestamp(100_000_000_000).utc == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)


def test_iso_utc_prints_z_and_only_needed_fractions():
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-02T01:04:05Z"
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5, 250_000, tzinfo=UTC)) == "2026-01-02T03:04:05.25Z"
