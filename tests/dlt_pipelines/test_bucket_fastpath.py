"""The vectorised bucket path (heart_rates, steps: raw BSON batch -> parent and child tables)
accepts only what the per-document contract accepts, with exactly its rows, and hands everything
else back for it."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta

import bson
import factories as f
import pyarrow as pa
import pytest
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.errors import InvalidBSON
from bson.int64 import Int64

from dlt_pipelines import bucket_fastpath, reader
from dlt_pipelines.bucket_fastpath import split_buckets
from dlt_pipelines.contract import FUTURE_TOLERANCE, MIN_TS, BadDocument, Context, flatten
from dlt_pipelines.tables import CHILD_SCHEMAS, PARENT_SCHEMAS, ColumnBuffer
from generators.bad_data import corrupt

OPTIONS = CodecOptions(tz_aware=True)
NOW = datetime.now(UTC)
CTX = Context(now=NOW, known_devices={"w-1": "watch", "w-2": "watch", "p-1": "phone", "aq-1": "air_quality"})
WINDOW_END = f.ms(NOW)
INGESTED = f.ms(NOW - timedelta(minutes=1))
START = datetime(2026, 11, 1, 8, tzinfo=UTC)


def bucket(collection: str, device_id: str = "w-1", samples: int = 3, key: str = "", **fields) -> dict:
    """A bucket in the field order the devices send, ``fields`` replacing values (None deletes)."""
    start = START
    if collection == "heart_rates":
        metrics = [{"ts": start + timedelta(seconds=10 * k), "bpm": 60 + k % 100, "confidence": k % 4}
                   for k in range(samples)]
    else:  # the samples spread over the 15-minute bucket, however many
        metrics = [{"ts": start + timedelta(milliseconds=k * 900_000 // max(samples, 15)), "steps": (17 * k) % 401}
                   for k in range(samples)]
    span = timedelta(hours=4) if collection == "heart_rates" else timedelta(minutes=15)
    doc = {"_id": f"{collection}:{device_id}:{samples}{key}", "device_id": device_id, "created_at": start,
           "ended_at": start + span, "metrics": metrics, "_ingested_at": INGESTED}
    for name, value in fields.items():
        if value is None:
            doc.pop(name)
        else:
            doc[name] = value
    return doc


def with_item(doc: dict, i: int, **fields) -> dict:
    """``doc`` with item ``i`` of its metrics changed (None deletes a field)."""
    metrics = [dict(m) for m in doc["metrics"]]
    for name, value in fields.items():
        if value is None:
            metrics[i].pop(name)
        else:
            metrics[i][name] = value
    return {**doc, "metrics": metrics}


def contract_tables(collection: str, docs: list[dict]) -> tuple[pa.Table, pa.Table]:
    """What the per-document path (reader.read_documents's ``one``) makes of ``docs``."""
    parents, children = ColumnBuffer(PARENT_SCHEMAS[collection]), ColumnBuffer(CHILD_SCHEMAS[collection])
    for doc in docs:
        flat = flatten(collection, doc, CTX)
        parents.append({**flat.row, "_id": doc["_id"], "_ingested_at": doc["_ingested_at"]})
        children.extend(flat.children, {"_parent_id": doc["_id"], "_ingested_at": doc["_ingested_at"]})
    return (parents.take() or PARENT_SCHEMAS[collection].empty_table(),
            children.take() or CHILD_SCHEMAS[collection].empty_table())


def accepted(collection: str, raw: bytes) -> bool:
    """Whether the per-document path loads this document (False: it quarantines it or cannot decode it)."""
    try:
        flatten(collection, bson.decode(raw, OPTIONS), CTX)
    except (BadDocument, InvalidBSON):
        return False
    return True


def split(collection: str, raws: list[bytes], window_end: datetime = WINDOW_END):
    parts = list(split_buckets(b"".join(raws), collection, CTX, window_end))
    rows = pa.concat_tables([p.rows for p in parts])
    children = pa.concat_tables([p.children for p in parts])
    return rows, children, [o for p in parts for o in p.others]


def assert_same_as_contract(collection: str, docs: list[dict]) -> None:
    """Every document either becomes exactly the contract's rows or is handed back unchanged."""
    raws = [bson.encode(d) for d in docs]
    rows, children, others = split(collection, raws)
    taken = [r for r in raws if r not in others]
    assert len(taken) + len(others) == len(raws)
    assert all(accepted(collection, r) for r in taken), "took a document the contract quarantines"
    expected_rows, expected_children = contract_tables(collection, [bson.decode(r, OPTIONS) for r in taken])
    assert rows.to_pylist() == expected_rows.to_pylist()
    assert rows.equals(expected_rows) and children.equals(expected_children)  # types too, not just ==


HEART_RATE_PLAIN = [
    bucket("heart_rates", samples=0),                                   # empty metrics: sample_count 0
    bucket("heart_rates", samples=1),
    bucket("heart_rates", samples=12),                                  # two-digit keys
    bucket("heart_rates", samples=1_234),                               # up to four-digit keys
    with_item(bucket("heart_rates", samples=4, key=":edges",
                     metrics=[{"ts": MIN_TS, "bpm": 60, "confidence": 1}] * 4), 0, bpm=20, confidence=0) | {
        "created_at": MIN_TS, "ended_at": MIN_TS},                     # ended_at == created_at == 2000-01-01
    with_item(bucket("heart_rates", samples=4, key=":max", created_at=f.ms(NOW) - timedelta(hours=3),
                     ended_at=f.ms(NOW) + timedelta(hours=1),
                     metrics=[{"ts": f.ms(NOW) - timedelta(hours=3), "bpm": 60, "confidence": 1}] * 4),
              3, bpm=250, confidence=3, ts=f.ms(NOW + FUTURE_TOLERANCE)),  # ts at the last allowed millisecond-ish
    bucket("heart_rates", device_id="w-2", samples=5, key=":doubles",
           metrics=[{"ts": START, "bpm": 61.5, "confidence": 1}] * 5),  # every bpm a double: still uniform
    with_item(bucket("heart_rates", samples=30, key=":mixed"), 7, bpm=72.25),  # one double bpm: sizes vary
    with_item(bucket("heart_rates", samples=30, key=":mixed-edge"), 29, bpm=250.0),
]
STEPS_PLAIN = [
    bucket("steps", device_id="p-1", samples=15),
    bucket("steps", device_id="p-1", samples=0, key=":empty"),
    with_item(bucket("steps", device_id="p-1", samples=15, key=":edges"), 0, steps=0),
    with_item(bucket("steps", device_id="p-1", samples=15, key=":max"), 14, steps=400),
]


@pytest.mark.parametrize("collection, docs", [("heart_rates", HEART_RATE_PLAIN), ("steps", STEPS_PLAIN)])
def test_plain_buckets_become_the_contracts_rows(collection, docs):
    raws = [bson.encode(d) for d in docs]
    rows, children, others = split(collection, raws)
    assert others == []
    expected_rows, expected_children = contract_tables(collection, [bson.decode(r, OPTIONS) for r in raws])
    assert rows.to_pylist() == expected_rows.to_pylist()
    assert children.to_pylist() == expected_children.to_pylist()
    assert rows.equals(expected_rows) and children.equals(expected_children)
    assert rows.column("sample_count").to_pylist() == [len(d["metrics"]) for d in docs]


def _valid_but_unusual() -> list[tuple[str, dict]]:
    """Buckets the contract loads that are not in the devices' exact layout."""
    hr = bucket("heart_rates", samples=4, key=":unusual")
    st = bucket("steps", device_id="p-1", samples=4, key=":unusual")
    return [
        ("heart_rates", with_item(hr, 1, confidence=2.0) | {"_id": hr["_id"] + "1"}),        # double confidence
        ("heart_rates", {**hr, "_id": hr["_id"] + "2", "_test_bad_kind": "ignored"}),         # the ignored marker
        ("heart_rates", {"_id": hr["_id"] + "3", "created_at": hr["created_at"], "device_id": "w-1",
                         "ended_at": hr["ended_at"], "metrics": hr["metrics"], "_ingested_at": INGESTED}),  # order
        ("heart_rates", {**hr, "_id": hr["_id"] + "4",
                         "metrics": [{"bpm": m["bpm"], "ts": m["ts"], "confidence": m["confidence"]}
                                     for m in hr["metrics"]]}),                                # item field order
        ("steps", with_item(st, 0, steps=10.0) | {"_id": st["_id"] + "1"}),                   # integral double
        ("steps", {**st, "_id": st["_id"] + "2",
                   "metrics": [{"steps": m["steps"], "ts": m["ts"]} for m in st["metrics"]]}),  # item field order
        ("steps", {**st, "_id": st["_id"] + "3", "_test_bad_kind": "ignored"}),
        ("heart_rates", with_item(hr, 0, bpm=Int64(60)) | {"_id": hr["_id"] + "5"}),         # int64 numbers
        ("heart_rates", with_item(hr, 0, confidence=Int64(2)) | {"_id": hr["_id"] + "6"}),
        ("heart_rates", with_item(hr, 2, bpm=Decimal128("61.5")) | {"_id": hr["_id"] + "7"}),  # Decimal128
        ("steps", with_item(st, 0, steps=Int64(12)) | {"_id": st["_id"] + "4"}),
        ("steps", with_item(st, 1, steps=Decimal128("12")) | {"_id": st["_id"] + "5"}),
    ]


def _bad() -> list[tuple[str, dict]]:
    hr = bucket("heart_rates", samples=6, key=":bad")
    st = bucket("steps", device_id="p-1", samples=15, key=":bad")
    out: list[tuple[str, dict]] = []

    def add(collection: str, doc: dict) -> None:
        out.append((collection, {**doc, "_id": f"{doc['_id']}:{len(out)}"} if type(doc.get("_id")) is str else doc))

    for base, collection, value in ((hr, "heart_rates", "bpm"), (st, "steps", "steps")):
        add(collection, {**base, "extra": 1})
        for name in ("device_id", "created_at", "ended_at", "metrics"):
            add(collection, {k: v for k, v in base.items() if k != name})
        add(collection, {**base, "metrics": "60;61;62"})
        add(collection, {**base, "metrics": {"values": base["metrics"]}})
        add(collection, {**base, "metrics": None})
        add(collection, {**base, "metrics": [*base["metrics"], None]})
        add(collection, {**base, "metrics": [*base["metrics"], [1, 2]]})
        add(collection, {**base, "device_id": 7})
        add(collection, {**base, "device_id": "w-404"})                  # unknown device
        add(collection, {**base, "created_at": "2026-11-01T08:00:00Z"})
        add(collection, {**base, "created_at": "yesterday at noon"})
        add(collection, {**base, "created_at": datetime(1999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)})
        add(collection, {**base, "ended_at": datetime(2099, 7, 1, tzinfo=UTC)})
        add(collection, {**base, "ended_at": base["created_at"] - timedelta(milliseconds=1)})
        add(collection, with_item(base, 1, ts=datetime(1999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)))
        add(collection, with_item(base, 2, ts=f.ms(NOW + timedelta(days=1, seconds=1))))
        add(collection, with_item(base, 0, ts="2026-11-01T08:00:00Z"))
        add(collection, with_item(base, 0, ts=None))
        add(collection, with_item(base, 3, extra=0))
        add(collection, with_item(base, 3, junk={"a": {"b": 1}}))
        add(collection, with_item(base, 0, **{value: None}))
        add(collection, with_item(base, 0, **{value: str(base["metrics"][0][value])}))
        add(collection, with_item(base, 0, **{value: {"v": 1}}))
        add(collection, with_item(base, 0, **{value: [1]}))
        add(collection, with_item(base, 0, **{value: math.nan}))
        add(collection, with_item(base, 0, **{value: math.inf}))
        add(collection, with_item(base, 0, **{value: -math.inf}))
        add(collection, with_item(base, 0, **{value: Int64(1 << 40)}))     # int64, out of range
        add(collection, with_item(base, 0, **{value: Decimal128("1e30")}))   # beyond int64
        add(collection, with_item(base, 1, ts=base["created_at"] - timedelta(milliseconds=1)))  # outside its bucket
        add(collection, with_item(base, 1, ts=base["ended_at"] + timedelta(milliseconds=1)))
        add(collection, {**base, "ended_at": base["created_at"] + 2 * (base["ended_at"] - base["created_at"])})
        add(collection, {**base, "device_id": "aq-1"})                   # an air-quality sensor cannot send it
        add(collection, with_item(base, 0, **{value: True}))
    for bpm in (19, 251, 400, -5, 19.999, 250.001):
        add("heart_rates", with_item(hr, 4, bpm=bpm))
    for confidence in (4, -1, 2.5, "2", math.nan):
        add("heart_rates", with_item(hr, 5, confidence=confidence))
    add("heart_rates", with_item(hr, 5, confidence=None))
    for steps in (-1, 401, 5000, -20, 2.5):
        add("steps", with_item(st, 14, steps=steps))
    add("heart_rates", {"_id": "hr:empty:1", "_ingested_at": INGESTED})
    add("steps", {"_id": "st:empty:1", "_ingested_at": INGESTED})
    return out


def _generated_bad() -> list[tuple[str, dict]]:
    """The generators' bad documents (every kind, several seeds), with and without their marker."""
    out = []
    for collection, device_id in (("heart_rates", "w-1"), ("steps", "p-1")):
        # ids as the generators write them ("<prefix>:<device>:<epoch>"): their unknown_device kind rewrites them
        docs = [bucket(collection, device_id, 20, _id=f"{collection[:2]}:{device_id}:{1_793_577_600 + 900 * i}")
                for i in range(40)]
        for seed in range(3):
            for doc in corrupt(docs, collection, 1.0, seed, "test"):
                out.append((collection, doc))
                plain = {k: v for k, v in doc.items() if k != "_test_bad_kind"}
                if type(doc.get("_id")) is str:
                    plain["_id"] = doc["_id"] + ":plain"
                out.append((collection, plain))
    return out


@pytest.mark.parametrize("collection", ["heart_rates", "steps"])
def test_everything_else_goes_to_the_per_document_path(collection):
    unusual = [bson.encode(d) for c, d in _valid_but_unusual() if c == collection]
    bad = [bson.encode(d) for c, d in _bad() if c == collection]
    assert unusual and bad
    assert all(accepted(collection, r) for r in unusual)
    assert not any(accepted(collection, r) for r in bad)
    plain = bson.encode(bucket(collection, "w-1" if collection == "heart_rates" else "p-1", 9, key=":plain"))
    rows, children, others = split(collection, [plain, *unusual, *bad])
    assert rows.column("_id").to_pylist() == [bson.decode(plain)["_id"]]
    assert others == [*unusual, *bad]
    assert children.num_rows == 9


@pytest.mark.parametrize("collection", ["heart_rates", "steps"])
def test_generated_bad_documents_are_handled_like_the_contract_does(collection):
    docs = [d for c, d in _generated_bad() if c == collection]
    raws = [bson.encode(d) for d in docs]
    rows, children, others = split(collection, raws)
    # nothing the contract quarantines is taken, and what is taken is exactly the contract's rows
    assert not any(not accepted(collection, r) for r in raws if r not in others)
    assert_same_as_contract(collection, docs)
    # the generators' valid buckets (duplicate_id copies, marker-free numbers) are taken here
    assert rows.num_rows > 0


def _patched(raw: bytes, at: int, new: bytes) -> bytes:
    return raw[:at] + new + raw[at + len(new):]


def test_malformed_bytes_go_to_the_per_document_path():
    doc = bucket("heart_rates", samples=12, key=":bytes")
    raw = bson.encode(doc)
    metrics = raw.index(b"\x04metrics\x00") + len(b"\x04metrics\x00")
    first_item = metrics + 4 + 3
    second_key = raw.index(b"\x031\x00", first_item)
    device = raw.index(b"\x02device_id\x00") + len(b"\x02device_id\x00")
    broken = {
        "array size off by one": _patched(raw, metrics, struct.pack("<i", struct.unpack_from("<i", raw, metrics)[0] - 1)),
        "item size off by one": _patched(raw, first_item, struct.pack("<i", 41)),
        "item size too large": _patched(raw, first_item, struct.pack("<i", 10_000)),
        "string length too long": _patched(raw, device, struct.pack("<i", 4_000)),
        "string without NUL": _patched(raw, device + 4 + 2, b"X"),
        "element key out of order": _patched(raw, second_key, b"\x037\x00"),
        "element is a string": _patched(raw, second_key, b"\x02"),
        "item ts is an int64": _patched(raw, first_item + 4, b"\x12"),
        "bpm is an int64 type byte": _patched(raw, first_item + 16, b"\x12"),
        "terminator missing": raw[:-1] + b"\x01",
        "invalid UTF-8 in device_id": _patched(raw, device + 4, b"\xff"),
    }
    plain = bson.encode(bucket("heart_rates", samples=12, key=":neighbour"))
    for name, bad in broken.items():
        assert len(bad) == len(raw), name
        rows, _, others = split("heart_rates", [plain, bad])
        assert bad in others, name
        assert doc["_id"] not in rows.column("_id").to_pylist(), name
        # the neighbour is taken, or (invalid UTF-8 anywhere in the chunk) handed back with it
        assert rows.num_rows + len(others) == 2, name
    # reordered keys in an array are ignored by the decoder: the contract loads that one
    assert accepted("heart_rates", broken["element key out of order"])
    assert not accepted("heart_rates", broken["item size off by one"])


@pytest.mark.parametrize("collection", ["heart_rates", "steps"])
def test_buckets_at_or_after_the_window_end_wait_for_the_next_window(collection):
    # a window end between two milliseconds: a bucket stamped in the millisecond before it is inside
    window_end = WINDOW_END + timedelta(microseconds=500)
    device_id = "w-1" if collection == "heart_rates" else "p-1"
    docs = [bucket(collection, device_id, key=":in", _ingested_at=WINDOW_END - timedelta(milliseconds=1)),
            bucket(collection, device_id, key=":same-ms", _ingested_at=WINDOW_END),
            bucket(collection, device_id, key=":next-ms", _ingested_at=WINDOW_END + timedelta(milliseconds=1)),
            bucket(collection, device_id, key=":later", _ingested_at=WINDOW_END + timedelta(seconds=1))]
    rows, children, others = split(collection, [bson.encode(d) for d in docs], window_end)
    assert rows.column("_id").to_pylist() == [docs[0]["_id"], docs[1]["_id"]] and others == []
    assert set(children.column("_parent_id").to_pylist()) == {docs[0]["_id"], docs[1]["_id"]}


def test_large_batches_are_split_into_chunks_with_the_same_rows(monkeypatch):
    docs = [bucket("heart_rates", "w-1", n, key=f":{n}") for n in (0, 1, 50, 200, 3, 700)]
    docs.append(with_item(bucket("heart_rates", "w-1", 40, key=":odd"), 5, bpm=math.nan))
    raws = [bson.encode(d) for d in docs]
    whole = split("heart_rates", raws)
    monkeypatch.setattr(bucket_fastpath, "CHUNK_BYTES", 4_096)
    parts = list(split_buckets(b"".join(raws), "heart_rates", CTX, WINDOW_END))
    assert len(parts) > 3
    assert pa.concat_tables([p.rows for p in parts]).equals(whole[0])
    assert pa.concat_tables([p.children for p in parts]).equals(whole[1])
    assert [o for p in parts for o in p.others] == whole[2] == [raws[-1]]


def test_without_a_device_registry_any_device_is_taken():
    doc = bucket("steps", "p-unregistered", 15)
    raw = bson.encode(doc)
    open_ctx = Context(now=NOW, known_devices=None)
    parts = list(split_buckets(raw, "steps", open_ctx, WINDOW_END))
    assert parts[0].rows.column("device_id").to_pylist() == ["p-unregistered"] and parts[0].others == []
    assert split("steps", [raw])[2] == [raw]  # with the registry it is the contract's unknown_device


def test_a_broken_range_check_is_caught(monkeypatch):
    """The equivalence check is not vacuous: a fast path that let bpm 251 through fails it."""
    doc = with_item(bucket("heart_rates", samples=5, key=":251"), 2, bpm=251)
    original = bucket_fastpath.Layout.int32_or_double

    def lenient(self, key):
        value, is_int = original(self, key)
        return value.clip(20, 250), is_int  # a bug: out-of-range values pulled into range

    monkeypatch.setattr(bucket_fastpath.Layout, "int32_or_double", lenient)
    with pytest.raises(AssertionError, match="took a document the contract quarantines"):
        assert_same_as_contract("heart_rates", [doc])
    monkeypatch.undo()
    assert_same_as_contract("heart_rates", [doc])


@pytest.mark.parametrize("collection", ["heart_rates", "steps"])
def test_read_documents_gives_the_per_document_paths_batches(services, collection, monkeypatch):
    """Through a real MongoDB-protocol server: the same rows, children, quarantine and counts with
    the vectorised path as without it."""
    from iot_core.connections import mongo_client, mongo_db

    device_id = "w-1" if collection == "heart_rates" else "p-1"
    docs = [bucket(collection, device_id, n, key=f":db{n}") for n in (0, 1, 15, 300)]
    unusual = [d for c, d in _valid_but_unusual() if c == collection]
    docs += [d for c, d in _bad() if c == collection] + unusual
    client = mongo_client()
    try:
        db = mongo_db(client)
        db.drop_collection(collection)
        db[collection].insert_many(docs)

        def read():
            counts = reader.ReadCounts()
            batches = list(reader.read_documents(reader.snapshot_batches(db, collection), collection, CTX,
                                                 reader.CaptureTimes(WINDOW_END), db[collection].codec_options,
                                                 counts))
            tables = {}
            for part in ("rows", "children", "quarantine"):
                found = [getattr(b, part) for b in batches if getattr(b, part) is not None]
                table = pa.concat_tables(found).drop_columns(["quarantined_at"] if part == "quarantine" else [])
                tables[part] = sorted(table.to_pylist(), key=lambda r: str(sorted(r.items())))
            return tables, counts

        fast, fast_counts = read()
        monkeypatch.setattr(reader, "BUCKET_COLLECTIONS", frozenset())
        slow, slow_counts = read()
    finally:
        db.drop_collection(collection)
        client.close()
    assert fast == slow
    assert fast_counts == slow_counts
    assert fast_counts.rows == 4 + len(unusual)
    assert fast_counts.quarantined > 30
