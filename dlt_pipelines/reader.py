"""Read one collection's window of ``_ingested_at`` from MongoDB and turn it into Arrow batches.

One range query per collection and window (``start <= _ingested_at < end``), streamed with a
server-side cursor: no count, no skip/limit paging. Each document is validated and flattened in
the same pass (dlt_pipelines.contract), so good rows, child rows and quarantine rows come out of
one read. Air quality (fastpath.py) and the heart-rate and step buckets (bucket_fastpath.py) go
through vectorised paths first, which take whole raw batches apart and hand back, as raw bytes,
every document they do not take plainly; those go the per-document way.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

import bson
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bson import CodecOptions, json_util
from bson.errors import InvalidBSON

from dlt_pipelines import contract
from dlt_pipelines.bucket_fastpath import BUCKET_COLLECTIONS, split_buckets
from dlt_pipelines.fastpath import bytes_match, document_offsets, int32_at, split_air_quality
from dlt_pipelines.source_ids import MAX_KEY_LENGTH, encode_id, quarantine_key
from dlt_pipelines.tables import CHILD_SCHEMAS, PARENT_SCHEMAS, QUARANTINE_SCHEMA, ColumnBuffer
from dlt_pipelines.tombstones import Tombstones
from iot_core.contract import UTC_OFFSET_MAX, UTC_OFFSET_MIN

# Documents per MongoDB batch / rows per Arrow table (appended to the load file at a time).
MONGO_BATCH_SIZE = 5_000
ARROW_BATCH_ROWS = 20_000
# Raw batches up to this size are decoded in one call (fastest for many small documents).
DECODE_ALL_MAX_BYTES = 2 << 20

_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS
# The fast paths skip documents whose writer stamp is at or after a window end; capture reads
# changes, not windows of that stamp, so no document is skipped for it.
_NO_WINDOW_END = datetime(9999, 12, 31, tzinfo=UTC)

Part = TypeVar("Part")


@dataclass
class Batch(Generic[Part]):
    """One slice of a collection split by target table: good rows, their child rows, quarantined
    documents (as Arrow tables while reading, as the finished load files afterwards)."""

    collection: str
    rows: Part | None = None
    children: Part | None = None
    quarantine: Part | None = None


@dataclass
class ReadCounts:
    documents: int = 0
    rows: int = 0
    child_rows: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    events: int = 0  # change events read (0 for a snapshot)
    deletes: int = 0  # documents deleted at the source
    snapshot: bool = False
    erased: int = 0  # documents naming an erased user or device (not loaded; dlt_pipelines.tombstones)


def prefetched_batches(collection, query: dict, batch_size: int = MONGO_BATCH_SIZE,
                       depth: int = 2) -> Iterator[bytes]:
    """The raw BSON batches of the documents matching ``query``, the next one fetched by a thread meanwhile.

    The server spends about as long producing a batch as we spend validating one; a plain cursor
    does the two one after the other. The thread only moves raw BSON bytes (socket waits release
    the GIL); decoding stays in the caller's thread.
    """
    batches: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def fetch() -> None:
        cursor = collection.find_raw_batches(query, batch_size=batch_size)
        try:
            for raw in cursor:
                while not stop.is_set():
                    try:
                        batches.put(raw, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            batches.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            batches.put(exc)
        finally:
            cursor.close()

    thread = threading.Thread(target=fetch, name=f"prefetch-{collection.name}", daemon=True)
    thread.start()
    try:
        while True:
            item = batches.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Undecodable:
    """A document whose strings are not valid UTF-8 (BSON requires it; a driver other than pymongo may
    still write such bytes): decoded with the bad bytes replaced, for the quarantine row."""

    doc: dict
    reason: str


def decode_document(raw: bytes, options) -> dict | Undecodable:
    """One raw document; invalid UTF-8 makes an Undecodable, not an error that stops the read."""
    try:
        return bson.decode(raw, options)
    except InvalidBSON as exc:
        # anything else wrong with the bytes is not the document's fault (the server sent them): raise
        doc = bson.decode(raw, options.with_options(unicode_decode_error_handler="replace"))
        return Undecodable(doc, f"invalid_utf8: {exc}")


def batch_documents(raw: bytes, options) -> Iterator[dict | Undecodable]:
    """The documents of a raw batch, decoded one by one when the batch holds invalid UTF-8."""
    if len(raw) <= DECODE_ALL_MAX_BYTES:
        try:
            yield from bson.decode_all(raw, options)
            return
        except InvalidBSON:
            pass  # nothing was yielded (decode_all is all or nothing): again, document by document
    starts = document_offsets(raw).tolist()
    for start, end in zip(starts, [*starts[1:], len(raw)], strict=True):
        yield decode_document(raw[start:end], options)


def quarantine_row(collection: str, doc: dict, reason: str, now: datetime, source_id: str,
                   captured_at: datetime | None) -> dict:
    """A ``raw.quarantine`` row that always loads: the document as Extended JSON with every NUL
    escape written out (``\\u0000``: jsonb refuses ``\u0000``)."""
    return {
        "collection": collection,
        "source_id": quarantine_key(source_id),
        "reason": reason.replace("\x00", "\\x00"),
        "document": _NUL_ESCAPE.sub(r"\1\\\\u0000", json_util.dumps(doc, json_options=_JSON_OPTIONS)),
        "_ingested_at": captured_at,
        "quarantined_at": now,
    }


# a JSON escape of NUL (``\u0000`` not preceded by an escaped backslash)
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def unstorable_text(value, path: str = "") -> str | None:
    """Where ``value`` holds a string PostgreSQL cannot store (text and jsonb refuse NUL), else None."""
    t = type(value)
    if t is str or isinstance(value, str):
        return path or "the document" if "\x00" in value else None
    if t is dict or isinstance(value, dict):
        for k, v in value.items():
            where = unstorable_text(v, f"{path}.{k}" if path else str(k))
            if where is not None:
                return where
    elif t is list or t is tuple:
        for i, v in enumerate(value):
            where = unstorable_text(v, f"{path}[{i}]")
            if where is not None:
                return where
    return None


class CaptureTimes:
    """The capture time (raw ``_ingested_at``) of each document: one time for a snapshot, the
    commit wall time per encoded ``_id`` for change events."""

    def __init__(self, at: datetime | dict[str, datetime]):
        self.at = at

    def of(self, source_id: str) -> datetime:
        return self.at if isinstance(self.at, datetime) else self.at[source_id]

    def column(self, ids: pa.Array | pa.ChunkedArray, type_: pa.DataType) -> pa.Array:
        if isinstance(self.at, datetime):
            return pa.repeat(pa.scalar(self.at, type_), len(ids))
        keys = list(self.at)
        positions = pc.index_in(ids, value_set=pa.array(keys, pa.string()))
        return pa.array(list(self.at.values()), type_).take(positions)


def _restamp(table: pa.Table, id_column: str, times: CaptureTimes) -> pa.Table:
    """A fast-path table with its keys encoded (see source_ids) and ``_ingested_at`` the capture time."""
    ids = table.column(id_column)
    special = pc.or_(pc.or_(pc.starts_with(ids, "{"), pc.starts_with(ids, '"')), pc.match_substring(ids, "\x00"))
    if len(ids) and pc.any(special).as_py():
        ids = pa.array([encode_id(v) for v in ids.to_pylist()], pa.string())
        table = table.set_column(table.schema.get_field_index(id_column), table.schema.field(id_column), ids)
    at = table.schema.get_field_index("_ingested_at")
    return table.set_column(at, table.schema.field(at), times.column(ids, table.schema.field(at).type))


_AQ_KEYS = frozenset({"_id", "_ingested_at", "devid", "ts", "readings"})
_AQ_BOUNDS = tuple(contract.AIR_QUALITY_RANGES[m] for m in contract.AIR_QUALITY_MEASURES)


def typical_air_quality(doc: dict, ctx: contract.Context) -> list | None:
    """The parent row of an air-quality document as a column-ordered list when it is plainly valid,
    else None (then the full contract check decides and gives the reason). Same rules as
    contract.flatten_air_quality for the usual layout (an ISO 8601 ``ts`` with an offset, float or
    int32 readings), written as one tight pass: this collection is most of the volume."""
    if doc.keys() != _AQ_KEYS:
        return None
    readings = doc["readings"]
    devid = doc["devid"]
    ts = doc["ts"]
    if type(readings) is not list or len(readings) != 7 or type(devid) is not str or type(ts) is not str:
        return None
    if type(doc["_id"]) is not str:  # the raw _id column is text: the contract decides (never an ArrowTypeError)
        return None
    senders = ctx.devices_sending("air_quality")
    if senders is not None and devid not in senders:
        return None
    values = []
    for v, (lo, hi) in zip(readings, _AQ_BOUNDS, strict=True):
        t = type(v)
        if t is float:
            if not lo <= v <= hi:  # NaN fails every comparison, so it lands here too
                return None
        elif t is int:
            if not lo <= v <= hi:
                return None
            v = float(v)
        else:
            return None
        values.append(v)
    if not 20 <= len(ts) <= 32 or ts[4] != "-" or "\x00" in ts or not devid or len(devid) > 64 \
            or not devid.isprintable():
        return None
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        return None
    offset = parsed.utcoffset()
    if offset is None or not _OFFSET_MIN <= offset <= _OFFSET_MAX or offset.seconds % 60:
        return None
    parsed = parsed.astimezone(UTC)
    if not contract.MIN_TS <= parsed <= ctx.max_ts:
        return None
    return [doc["_id"], devid, ts, parsed, None, *values, doc["_ingested_at"]]


_OFFSET_MIN, _OFFSET_MAX = UTC_OFFSET_MIN, UTC_OFFSET_MAX


def read_documents(batches: Iterable[bytes], collection: str, ctx: contract.Context, times: CaptureTimes,
                   options: CodecOptions, counts: ReadCounts | None = None,
                   batch_rows: int = ARROW_BATCH_ROWS, quarantine_reason: str | None = None,
                   tombstones: Tombstones | None = None) -> Iterator[Batch[pa.Table]]:
    """Validate and flatten raw BSON ``batches`` of ``collection`` into Arrow batches of good rows,
    child rows and quarantine rows. Every document of ``batches`` comes out in exactly one of them.
    With ``quarantine_reason``, every document is quarantined with that reason (changes whose load
    the warehouse keeps refusing). Documents naming an erased user or device (``tombstones``) are
    only counted."""
    tombstones = tombstones or None  # no tombstone at all: no check at all
    counts = counts if counts is not None else ReadCounts()
    parent_schema = PARENT_SCHEMAS.get(collection)
    parents = ColumnBuffer(parent_schema) if parent_schema is not None else None
    children = ColumnBuffer(CHILD_SCHEMAS[collection]) if collection in CHILD_SCHEMAS else None
    quarantine = ColumnBuffer(QUARANTINE_SCHEMA)
    flatten = contract.flatten
    devices_as_json = collection == "users"
    history_as_json = collection == "devices"
    fast_path = typical_air_quality if collection == "air_quality" else None
    vectorised = collection == "air_quality"
    vectorised_buckets = collection in BUCKET_COLLECTIONS

    def take() -> Batch[pa.Table]:
        return Batch(collection, parents.take() if parents else None, children.take() if children else None,
                     quarantine.take())

    def quarantined(doc: dict, source_id: str, kind: str, reason: str) -> None:
        quarantine.append(quarantine_row(collection, doc, reason, ctx.now, source_id, times.of(source_id)))
        counts.quarantined += 1
        counts.reasons[kind] = counts.reasons.get(kind, 0) + 1

    def one(doc: dict | Undecodable) -> None:
        """The per-document path: validate, flatten, buffer. The writer's own ``_ingested_at`` is
        never relied upon (capture does not need it); the row's is the capture time."""
        counts.documents += 1
        original = doc.doc if isinstance(doc, Undecodable) else doc
        if tombstones is not None and tombstones.names_erased(collection, original):
            counts.erased += 1
            return
        source_id = encode_id(original.get("_id"))
        captured_at = times.of(source_id)
        if isinstance(doc, Undecodable):
            quarantined(doc.doc, source_id, "invalid_utf8", doc.reason)
            return
        if quarantine_reason is not None:
            quarantined(doc, source_id, quarantine_reason.split(":", 1)[0], quarantine_reason)
            return
        if len(source_id.encode("utf-8", "surrogatepass")) > MAX_KEY_LENGTH:
            quarantined(doc, source_id, "id_too_long",
                        f"id_too_long: _id is {len(source_id)} characters, at most {MAX_KEY_LENGTH} can be indexed")
            return
        where = unstorable_text(doc)
        if where is not None:
            quarantined(doc, source_id, "unstorable_text",
                        f"unstorable_text: {where} holds a NUL character, which PostgreSQL cannot store")
            return
        keyed = doc if doc.get("_id") == source_id and type(doc.get("_id")) is str else {**doc, "_id": source_id}
        if fast_path is not None and type(keyed.get("_ingested_at")) is datetime:
            row_values = fast_path(keyed, ctx)
            if row_values is not None:
                row_values[-1] = captured_at
                parents.append_values(row_values)
                counts.rows += 1
                return
        try:
            flat = flatten(collection, keyed, ctx)
        except contract.BadDocument as bad:
            quarantined(doc, source_id, bad.kind, str(bad))
            return
        row = flat.row
        row["_id"] = source_id
        row["_ingested_at"] = captured_at
        if devices_as_json:
            row["devices"] = json.dumps(row["devices"])
        elif history_as_json:
            row["history"] = json.dumps(row["history"])
        parents.append(row)
        counts.rows += 1
        if flat.children:
            children.extend(flat.children, {"_parent_id": source_id, "_ingested_at": captured_at})
            counts.child_rows += len(flat.children)

    def full() -> bool:
        return bool((parents and parents.rows >= batch_rows) or (children and children.rows >= batch_rows)
                    or quarantine.rows >= batch_rows)

    if quarantine_reason is not None:
        vectorised = vectorised_buckets = False
        fast_path = None
    for raw in batches:
        if vectorised or vectorised_buckets:
            raw, long_ids = route_long_ids(raw)
            for doc in long_ids:
                one(decode_document(doc, options))
        if vectorised:
            plain, others = split_air_quality(raw, parent_schema, ctx, _NO_WINDOW_END)
            if tombstones is not None and plain.num_rows:
                plain, _ = _without_erased(plain, None, "devid", tombstones, counts)
            if plain.num_rows:
                counts.documents += plain.num_rows
                counts.rows += plain.num_rows
                yield Batch(collection, rows=_restamp(plain, "_id", times))
            docs = (decode_document(doc, options) for doc in others)
        elif vectorised_buckets:
            for part in split_buckets(raw, collection, ctx, _NO_WINDOW_END):
                if tombstones is not None and part.rows.num_rows:
                    part.rows, part.children = _without_erased(part.rows, part.children, "device_id", tombstones,
                                                               counts)
                if part.rows.num_rows:
                    counts.documents += part.rows.num_rows
                    counts.rows += part.rows.num_rows
                    counts.child_rows += part.children.num_rows
                    yield Batch(collection, rows=_restamp(part.rows, "_id", times),
                                children=_restamp(part.children, "_parent_id", times)
                                if part.children.num_rows else None)
                for doc in part.others:
                    one(decode_document(doc, options))
                    if full():
                        yield take()
            continue
        else:
            docs = batch_documents(raw, options)
        for doc in docs:
            one(doc)
            if full():
                yield take()
    last = take()
    if last.rows is not None or last.children is not None or last.quarantine is not None:
        yield last


# a string _id of more UTF-8 bytes than this may encode (JSON escapes: up to 6 bytes a byte) to a
# key too long to index: such documents take the per-document path, which measures exactly
_LONG_ID_BYTES = MAX_KEY_LENGTH // 6


def route_long_ids(raw: bytes) -> tuple[bytes, list[bytes]]:
    """``raw`` without the documents whose string ``_id`` is too long to index, and those documents
    (for the per-document path, which quarantines them). The fast paths take any string ``_id``."""
    starts = document_offsets(raw)
    sizes = np.diff(np.append(starts, len(raw)))
    if not len(starts) or sizes.max() <= _LONG_ID_BYTES:  # a long _id needs a long document
        return raw, []
    buf = np.frombuffer(raw + bytes(16), dtype=np.uint8)
    string_id = (buf[starts + 4] == 0x02) & bytes_match(buf, starts + 5, b"_id\x00")
    long_id = string_id & (int32_at(buf, starts + 9) - 1 > _LONG_ID_BYTES)
    if not long_id.any():
        return raw, []
    keep = [raw[s:s + n] for s, n in zip(starts[~long_id].tolist(), sizes[~long_id].tolist(), strict=True)]
    out = [raw[s:s + n] for s, n in zip(starts[long_id].tolist(), sizes[long_id].tolist(), strict=True)]
    return b"".join(keep), out


def _without_erased(rows: pa.Table, children: pa.Table | None, device_column: str, tombstones: Tombstones,
                    counts: ReadCounts) -> tuple[pa.Table, pa.Table | None]:
    """A fast path's rows (and their children) without those of erased devices."""
    mask = tombstones.device_mask(rows.column(device_column))
    if mask is None:
        return rows, children
    dropped = rows.filter(mask)
    counts.erased += dropped.num_rows
    counts.documents += dropped.num_rows  # read, though not loaded
    if children is not None and children.num_rows:
        children = children.filter(pc.invert(pc.is_in(children.column("_parent_id"), value_set=dropped.column("_id"))))
    return rows.filter(pc.invert(mask)), children


def snapshot_batches(db, collection: str) -> Iterator[bytes]:
    """Every document of ``collection`` as raw BSON batches (one query, no paging)."""
    batches = prefetched_batches(db[collection], {})
    try:
        yield from batches
    finally:
        batches.close()
