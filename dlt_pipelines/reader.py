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
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

import bson
import pyarrow as pa
from bson import json_util
from bson.errors import InvalidBSON

from dlt_pipelines import contract
from dlt_pipelines.bucket_fastpath import BUCKET_COLLECTIONS, split_buckets
from dlt_pipelines.fastpath import document_offsets, split_air_quality
from dlt_pipelines.tables import CHILD_SCHEMAS, PARENT_SCHEMAS, QUARANTINE_SCHEMA, ColumnBuffer

# Documents per MongoDB batch / rows per Arrow table (appended to the load file at a time).
MONGO_BATCH_SIZE = 5_000
ARROW_BATCH_ROWS = 20_000
# Raw batches up to this size are decoded in one call (fastest for many small documents).
DECODE_ALL_MAX_BYTES = 2 << 20

_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS

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


def window_query(start: datetime | None) -> dict:
    """The server-side part of the window: only the lower bound (served by the ``_ingested_at`` index).

    The upper bound is applied in Python: on this server a range filter that matches most of a
    collection costs more than the comparison here (the first load read 2x slower with it), and the
    documents beyond the window end are few (those that arrived while reading).
    """
    return {} if start is None else {"_ingested_at": {"$gte": start}}


def quarantine_row(collection: str, doc: dict, reason: str, now: datetime) -> dict:
    return {
        "collection": collection,
        "source_id": str(doc.get("_id")),
        "reason": reason,
        "document": json_util.dumps(doc, json_options=_JSON_OPTIONS),
        "_ingested_at": doc.get("_ingested_at") if isinstance(doc.get("_ingested_at"), datetime) else None,
        "quarantined_at": now,
    }


_AQ_KEYS = frozenset({"_id", "_ingested_at", "devid", "ts", "readings"})
_AQ_BOUNDS = tuple(contract.AIR_QUALITY_RANGES[m] for m in contract.AIR_QUALITY_MEASURES)


def typical_air_quality(doc: dict, ctx: contract.Context) -> list | None:
    """The parent row of an air-quality document as a column-ordered list when it is plainly valid,
    else None (then the full contract check decides and gives the reason). Same rules as
    contract.flatten_air_quality, written as one tight pass: this collection is most of the volume."""
    if doc.keys() != _AQ_KEYS:
        return None
    readings = doc["readings"]
    devid = doc["devid"]
    ts = doc["ts"]
    if type(readings) is not list or len(readings) != 7 or type(devid) is not str or type(ts) is not str:
        return None
    if ctx.known_devices is not None and devid not in ctx.known_devices:
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
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if parsed.tzinfo is None or not contract.MIN_TS <= parsed <= ctx.max_ts:
        return None
    return [doc["_id"], devid, ts, *values, doc["_ingested_at"]]


def read_collection(db, collection: str, start: datetime | None, end: datetime, ctx: contract.Context,
                    counts: ReadCounts | None = None, batch_rows: int = ARROW_BATCH_ROWS) -> Iterator[Batch[pa.Table]]:
    """Batches of the documents of ``collection`` with ``start <= _ingested_at < end``."""
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

    def quarantined(doc: dict, kind: str, reason: str) -> None:
        quarantine.append(quarantine_row(collection, doc, reason, ctx.now))
        counts.quarantined += 1
        counts.reasons[kind] = counts.reasons.get(kind, 0) + 1

    def one(doc: dict | Undecodable) -> None:
        """The per-document path: validate, flatten, buffer."""
        if isinstance(doc, Undecodable):
            bad_ingested_at = doc.doc.get("_ingested_at")
            if type(bad_ingested_at) is datetime and bad_ingested_at >= end:
                return  # after this window: the next run reads it
            counts.documents += 1
            quarantined(doc.doc, "invalid_utf8", doc.reason)
            return
        ingested_at = doc.get("_ingested_at")
        if type(ingested_at) is not datetime:
            # only a first (unbounded) load sees these: the range query of later runs cannot
            counts.documents += 1
            kind = "missing_field" if ingested_at is None else "wrong_type"
            quarantined(doc, kind, f"{kind}: _ingested_at is {ingested_at!r}, the writer must stamp it")
            return
        if ingested_at >= end:
            return  # after this window: the next run reads it
        counts.documents += 1
        if fast_path is not None:
            row_values = fast_path(doc, ctx)
            if row_values is not None:
                parents.append_values(row_values)
                counts.rows += 1
                return
        try:
            flat = flatten(collection, doc, ctx)
        except contract.BadDocument as bad:
            quarantined(doc, bad.kind, str(bad))
            return
        row = flat.row
        row["_id"] = doc["_id"]
        row["_ingested_at"] = doc["_ingested_at"]
        if devices_as_json:
            row["devices"] = json.dumps(row["devices"])
        elif history_as_json:
            row["history"] = json.dumps(row["history"])
        parents.append(row)
        counts.rows += 1
        if flat.children:
            children.extend(flat.children, {"_parent_id": doc["_id"], "_ingested_at": doc["_ingested_at"]})
            counts.child_rows += len(flat.children)

    def full() -> bool:
        return bool((parents and parents.rows >= batch_rows) or (children and children.rows >= batch_rows)
                    or quarantine.rows >= batch_rows)

    options = db[collection].codec_options
    batches = prefetched_batches(db[collection], window_query(start))
    try:
        for raw in batches:
            if vectorised:
                plain, others = split_air_quality(raw, parent_schema, ctx, end)
                if plain.num_rows:
                    counts.documents += plain.num_rows
                    counts.rows += plain.num_rows
                    yield Batch(collection, rows=plain)
                docs = (decode_document(doc, options) for doc in others)
            elif vectorised_buckets:
                for part in split_buckets(raw, collection, ctx, end):
                    if part.rows.num_rows:
                        counts.documents += part.rows.num_rows
                        counts.rows += part.rows.num_rows
                        counts.child_rows += part.children.num_rows
                        yield Batch(collection, rows=part.rows,
                                    children=part.children if part.children.num_rows else None)
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
    finally:
        batches.close()
    last = take()
    if last.rows is not None or last.children is not None or last.quarantine is not None:
        yield last
