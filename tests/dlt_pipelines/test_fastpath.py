"""The vectorised air-quality path (raw BSON batch -> Arrow) accepts only what the per-document
contract accepts, with the same values, and hands everything else back for it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import bson
import factories as f
from bson.codec_options import CodecOptions

from dlt_pipelines.contract import BadDocument, Context, flatten
from dlt_pipelines.fastpath import split_air_quality
from dlt_pipelines.tables import PARENT_SCHEMAS

OPTIONS = CodecOptions(tz_aware=True)
NOW = datetime.now(UTC)
CTX = Context(now=NOW, known_devices=frozenset({"aq-1", "aq-2"}))
WINDOW_END = f.ms(NOW)


def reading(devid: str, ts: str, readings: list, ingested_at: datetime | None = None, key: str = "") -> dict:
    """A device payload in the field order the devices send (all readings as doubles)."""
    return {"_id": f"aq:{devid}:{ts}{key}", "devid": devid, "ts": ts, "readings": readings,
            "_ingested_at": ingested_at or f.ms(NOW - timedelta(minutes=1))}


GOOD_READINGS = [50.0, 21.5, 40.0, 101.3, 0.5, 600.0, 3.0]


def with_reading(i: int, value) -> list:
    values = list(GOOD_READINGS)
    values[i] = value
    return values


def contract_row(doc: dict) -> dict | None:
    try:
        row = flatten("air_quality", doc, CTX).row
    except BadDocument:
        return None
    return {**row, "_id": doc["_id"], "_ingested_at": doc["_ingested_at"]}


def split(docs: list[dict]):
    raw = b"".join(bson.encode(d) for d in docs)
    table, others = split_air_quality(raw, PARENT_SCHEMAS["air_quality"], CTX, WINDOW_END)
    return table.to_pylist(), [bson.decode(o, OPTIONS) for o in others]


def test_plain_documents_become_the_contracts_rows():
    good = [reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS),
            reading("aq-2", "2026-11-01T00:00:00+11:00", with_reading(0, 0.0)),
            reading("aq-1", "2026-11-01T00:00:00-03:30", with_reading(6, 0.0)),
            reading("aq-1", "2000-01-01T00:00:00Z", with_reading(5, 40000.0)),
            reading("aq-1", "2000-01-01T05:00:00+05:00", GOOD_READINGS, key=":edge"),  # = 2000-01-01 UTC
            reading("aq-1", "2024-02-29T23:59:59Z", with_reading(1, -40.0))]
    rows, others = split(good)
    assert others == []
    assert rows == [contract_row(bson.decode(bson.encode(d), OPTIONS)) for d in good]


def test_everything_else_goes_to_the_per_document_path():
    valid_but_unusual = [
        reading("aq-1", "2026-11-01T00:00:00Z", with_reading(6, 3)),                 # an int reading
        reading("aq-1", "2026-11-01T00:00:00.250Z", GOOD_READINGS),                  # fractional seconds
        {"_id": "aq:reordered", "ts": "2026-11-01T00:00:00Z", "devid": "aq-1", "readings": GOOD_READINGS,
         "_ingested_at": f.ms(NOW - timedelta(minutes=1))},
    ]
    bad = [
        reading("aq-1", "2026-11-01T00:00:00+00:00", GOOD_READINGS) | {"x": None},   # extra field
        reading("aq-1", "2026-02-30T00:00:00Z", GOOD_READINGS),       # no 30 February
        reading("aq-1", "2026-11-01T24:00:00Z", GOOD_READINGS),
        reading("aq-1", "2026-11-01T00:00:00+24:00", GOOD_READINGS),  # offsets stay within a day
        reading("aq-1", "2026-11-01T00:00:00", GOOD_READINGS),        # no offset
        reading("aq-1", "1999-12-31T23:59:59Z", GOOD_READINGS),
        reading("aq-1", "2000-01-01T00:59:59+01:00", GOOD_READINGS),  # 1999 in UTC
        reading("aq-1", (NOW + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), GOOD_READINGS),
        reading("aq-1", (NOW + timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%S-09:00"), GOOD_READINGS),
        reading("aq-9", "2026-11-01T00:00:00Z", GOOD_READINGS),       # unknown device
        reading("aq-1", "2026-11-01T00:00:00Z", with_reading(0, math.nan)),
        reading("aq-1", "2026-11-01T00:00:00Z", with_reading(5, -math.inf)),
        reading("aq-1", "2026-11-01T00:00:00Z", with_reading(4, 1000.5)),
        reading("aq-1", "2026-11-01T00:00:00Z", with_reading(2, -0.1)),
        reading("aq-1", "2026-11-01T00:00:00Z", [*GOOD_READINGS, 1.0]),
        reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS[:6]),
        reading("aq-1", "2026-11-01T00:00:00Z", with_reading(1, "21.5")),
        reading("aq-1", "2026-11-01T00:00:00Z", with_reading(3, [101.3])),
    ]
    # the generators' bad documents, with and without their (ignored) marker
    for collection, doc in f.bad_documents("aq-1", "w-1", f.BASE):
        if collection == "air_quality":
            bad.append(doc)
            bad.append({k: v for k, v in doc.items() if k != "_test_bad_kind"} | {"_id": doc["_id"] + ":plain"})
    bad.append({"_id": "aq:no-cursor", "devid": "aq-1", "ts": "2026-11-01T00:00:00Z", "readings": GOOD_READINGS})
    assert all(contract_row(bson.decode(bson.encode(d), OPTIONS)) is None for d in bad if "_ingested_at" in d)

    plain = reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS, key=":plain")
    rows, others = split([plain, *valid_but_unusual, *bad])
    assert [r["_id"] for r in rows] == [plain["_id"]]
    assert [o["_id"] for o in others] == [d["_id"] for d in [*valid_but_unusual, *bad]]
    # and the per-document path still loads the unusual but valid ones
    assert all(contract_row(o) is not None for o in others[:len(valid_but_unusual)])


def test_documents_at_or_after_the_window_end_wait_for_the_next_window():
    docs = [reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS, WINDOW_END - timedelta(milliseconds=1), ":in"),
            reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS, WINDOW_END, ":at-end"),
            reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS, WINDOW_END + timedelta(seconds=1), ":later")]
    rows, others = split(docs)
    assert [r["_id"] for r in rows] == [docs[0]["_id"]] and others == []


def test_a_window_end_between_two_milliseconds_keeps_the_millisecond_before_it():
    window_end = WINDOW_END + timedelta(microseconds=500)
    docs = [reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS, WINDOW_END, ":same-ms"),
            reading("aq-1", "2026-11-01T00:00:00Z", GOOD_READINGS, WINDOW_END + timedelta(milliseconds=1), ":next")]
    table, others = split_air_quality(b"".join(bson.encode(d) for d in docs), PARENT_SCHEMAS["air_quality"], CTX,
                                      window_end)
    assert table.column("_id").to_pylist() == [docs[0]["_id"]] and others == []
