"""Vectorised fast path for the bucket collections ``heart_rates`` and ``steps``: raw BSON batches
straight to the parent rows and the metrics child rows.

A bucket document as the devices send it is::

    {_id: str, device_id: str, created_at: datetime, ended_at: datetime,
     metrics: [{ts: datetime, bpm: int32 or double, confidence: int32}, ...],   # heart_rates
     _ingested_at: datetime}
    # steps: metrics: [{ts: datetime, steps: int32}, ...]

in that field order, the items being embedded documents keyed "0", "1", ... . The parent fields
are few (one document per bucket) and are checked column-wise over a batch like the air-quality
path (dlt_pipelines.fastpath). The items are the volume (hundreds per heart-rate bucket): their
offsets are computed, not walked, when every item of a bucket has the same size (the usual case:
the item count then follows from the array's size and the positions from the count), and walked
in Python otherwise. Then numpy checks every item's bytes (keys, types, order, terminators) and
values (the contract's ranges, NaN, ``ts`` within 2000-01-01 … now + tolerance and inside its
bucket; at most the contract's samples per bucket) and gathers ``ts``,
the values and ``idx`` for the whole batch at once: no Python dict per item.

As with air quality, a document is taken here only when its bytes match that layout exactly and
every value passes the contract's checks (contract._flatten_buckets with its item rules); any
other document, however slight the difference (an extra or reordered field, a double
``confidence``, one odd item), goes back as raw bytes to the per-document path
(contract.flatten), which decides and names the reason. The rows are exactly the contract's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dlt_pipelines import contract
from dlt_pipelines.fastpath import (
    PADDING,
    Layout,
    document_offsets,
    first_ms_from,
    int32_at,
    last_ms_until,
    utf8_strings,
)
from dlt_pipelines.tables import CHILD_SCHEMAS, PARENT_SCHEMAS
from iot_core.contract import COLLECTIONS as COLLECTION_RULES

BUCKET_COLLECTIONS = frozenset({"heart_rates", "steps"})
# Documents are taken apart in chunks of about this many bytes (a day of heart-rate buckets is one
# 9 MB batch): the per-item arrays of one chunk are what is in memory at a time. Measured on a day
# of 50 users: 512 KB chunks read at the peak memory of the per-document path (2 MB: +12 MB) and
# cost ~0.01 s more CPU than 2 MB ones.
CHUNK_BYTES = 512 << 10
# An array element is at least 8 bytes, a document at most 16 MB: keys have at most 7 digits.
_MAX_KEY_DIGITS = 7
_INT32 = struct.Struct("<i")


@dataclass
class BucketSplit:
    """One chunk of a raw batch: the plainly valid documents inside the window as the parent and
    child tables, and the raw bytes of every document that is not plainly valid."""

    rows: pa.Table
    children: pa.Table
    others: list[bytes]


def split_buckets(raw: bytes, collection: str, ctx: contract.Context, window_end: datetime) -> Iterator[BucketSplit]:
    """Take apart a raw batch of ``collection`` (heart_rates or steps), chunk by chunk.

    Plainly valid documents with ``_ingested_at >= window_end`` are in no part: the next window
    reads them.
    """
    starts = document_offsets(raw)
    sizes = np.diff(np.append(starts, len(raw)))
    # a chunk is the documents starting within the same CHUNK_BYTES of the batch
    cuts = np.flatnonzero(np.diff(starts // CHUNK_BYTES)) + 1
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(starts)], strict=True):
        begin, end = int(starts[lo]), int(starts[hi - 1] + sizes[hi - 1])
        yield _split_chunk(raw[begin:end], starts[lo:hi] - begin, sizes[lo:hi], collection, ctx, window_end)


def _split_chunk(raw: bytes, starts: np.ndarray, sizes: np.ndarray, collection: str, ctx: contract.Context,
                 window_end: datetime) -> BucketSplit:
    parent_schema, child_schema = PARENT_SCHEMAS[collection], CHILD_SCHEMAS[collection]
    buf = np.frombuffer(raw + bytes(PADDING), dtype=np.uint8)
    layout = Layout(buf, starts, sizes)
    layout.expect(b"\x02_id\x00")
    id_start, id_len = layout.string()
    layout.expect(b"\x02device_id\x00")
    dev_start, dev_len = layout.string()
    layout.expect(b"\x09created_at\x00")
    created_ms = layout.int64()
    layout.expect(b"\x09ended_at\x00")
    ended_ms = layout.int64()
    layout.expect(b"\x04metrics\x00")
    array_start, array_size = layout.embedded()
    layout.expect(b"\x09_ingested_at\x00")
    ingested_ms = layout.int64()
    layout.end()
    ok = layout.ok

    # contract._bucket: created_at within 2000-01-01 … now + tolerance, ended_at not before it and
    # at most the collection's span after it
    rules = COLLECTION_RULES[collection]
    span_ms = int(rules.bucket_span.total_seconds() * 1000)
    lo_ms, hi_ms = first_ms_from(contract.MIN_TS), last_ms_until(ctx.max_ts)
    ok &= (created_ms >= lo_ms) & (created_ms <= hi_ms)
    ok &= (ended_ms >= created_ms) & (ended_ms - created_ms <= span_ms)
    try:
        ids = utf8_strings(buf, np.where(ok, id_start, 0), np.where(ok, id_len, 0))
        devices = utf8_strings(buf, np.where(ok, dev_start, 0), np.where(ok, dev_len, 0))
    except pa.ArrowInvalid:  # invalid UTF-8 somewhere: the per-document path sorts it out
        return BucketSplit(parent_schema.empty_table(), child_schema.empty_table(),
                           [raw[s:s + n] for s, n in zip(starts.tolist(), sizes.tolist(), strict=True)])
    senders = ctx.devices_sending(collection)
    if senders is not None:  # registered, and of a kind that sends this collection
        known = pc.is_in(devices, value_set=pa.array(sorted(senders), pa.string()))
        ok &= pc.fill_null(known, False).to_numpy(zero_copy_only=False)

    item_doc, item_start, item_size, plain_array = _item_positions(raw, buf, array_start, array_size, ok)
    ok &= plain_array
    items = Layout(buf, item_start, item_size)
    items.expect(b"\x09ts\x00")
    ts_ms = items.int64()
    # inside the contract's times and inside its own bucket
    item_ok = (ts_ms >= lo_ms) & (ts_ms <= hi_ms)
    item_ok &= (ts_ms >= created_ms[item_doc]) & (ts_ms <= ended_ms[item_doc])
    if collection == "heart_rates":
        bpm, _ = items.int32_or_double(b"bpm")
        items.expect(b"\x10confidence\x00")
        confidence = items.int32()
        items.end()
        # NaN fails every comparison, so it is rejected here too
        (bpm_lo, bpm_hi), (conf_lo, conf_hi) = contract.BPM_RANGE, contract.CONFIDENCE_RANGE
        item_ok &= (bpm >= bpm_lo) & (bpm <= bpm_hi) & (confidence >= conf_lo) & (confidence <= conf_hi)
        values = [bpm, confidence.astype(np.float64)]
    else:
        items.expect(b"\x10steps\x00")
        steps = items.int32()
        items.end()
        item_ok &= (steps >= contract.STEPS_RANGE[0]) & (steps <= contract.STEPS_RANGE[1])
        values = [steps.astype(np.int64)]
    item_ok &= items.ok
    ok &= np.bincount(item_doc[~item_ok], minlength=len(ok)) == 0

    counts = np.bincount(item_doc, minlength=len(ok))
    ok &= counts <= rules.max_samples
    take = ok & (ingested_ms < first_ms_from(window_end))
    rows = np.flatnonzero(take)
    parent_rows = pa.array(rows)
    parent_ingested = ingested_ms[rows] * 1000
    parents = pa.Table.from_arrays(
        [ids.take(parent_rows), devices.take(parent_rows), _timestamps(created_ms[rows] * 1000),
         _timestamps(ended_ms[rows] * 1000), pa.array(counts[rows], pa.int32()), _timestamps(parent_ingested)],
        schema=parent_schema)

    taken_items = np.flatnonzero(take[item_doc])
    parent_of_item = item_doc[taken_items]
    # position of each taken document among the taken ones: its parent row
    row_of_doc = np.cumsum(take) - 1
    child_parent = row_of_doc[parent_of_item]
    first_item = np.cumsum(counts) - counts
    children = pa.Table.from_arrays(
        [parents.column("_id").take(pa.array(child_parent)),
         pa.array(taken_items - first_item[parent_of_item], pa.int32()),
         _timestamps(ts_ms[taken_items] * 1000),
         *[pa.array(v[taken_items]) for v in values],
         _timestamps(parent_ingested[child_parent])],
        schema=child_schema)
    others = [raw[s:s + n] for s, n in zip(starts[~ok].tolist(), sizes[~ok].tolist(), strict=True)]
    return BucketSplit(parents, children, others)


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us, pa.int64()).cast(PARENT_SCHEMAS["heart_rates"].field("_ingested_at").type)


def _element_bytes(count: np.ndarray, item_size: np.ndarray) -> np.ndarray:
    """Bytes taken by the first ``count`` elements of an array whose items all have ``item_size``
    bytes: each is a type byte, its index as decimal key, a NUL and the item."""
    key_digits = count.copy()  # one digit each, plus one per power of ten an index reaches
    for k in range(1, _MAX_KEY_DIGITS):
        key_digits += np.maximum(count - 10 ** k, 0)
    return count * (2 + item_size) + key_digits


def _key_digits(index: np.ndarray) -> np.ndarray:
    digits = np.ones_like(index)
    for k in range(1, _MAX_KEY_DIGITS):
        digits += index >= 10 ** k
    return digits


def _item_positions(raw: bytes, buf: np.ndarray, array_start: np.ndarray, array_size: np.ndarray,
                    ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The items of the metrics arrays of the documents with ``ok``: (document, start, size) per
    item, in document and array order, and per document whether its array is a plain sequence of
    embedded documents keyed "0", "1", ... (documents not ``ok`` have no items and False)."""
    payload = np.where(ok, array_size - 5, 0)  # the elements' bytes, between int32 size and NUL
    # assume every item of a bucket has the size of its first (at byte 3 of the first element "\x03" "0" "\x00")
    first_size = np.where(ok & (payload > 0), int32_at(buf, np.where(ok, array_start + 7, 0)), 0)
    uniform = ok & ((payload == 0) | (first_size >= 5))
    first_size = np.where(uniform, first_size, 5)
    # the item count that fills the array exactly: _element_bytes grows with it (binary search)
    low = np.zeros(len(ok), dtype=np.int64)
    high = payload // (3 + first_size) + 1
    while (high - low > 1).any():
        mid = (low + high) // 2
        fits = _element_bytes(mid, first_size) <= payload
        low = np.where(fits, mid, low)
        high = np.where(fits, high, mid)
    count = np.where(uniform, low, 0)
    uniform &= _element_bytes(count, first_size) == payload

    doc, start, index = _uniform_items(count, array_start, first_size)
    # the element headers and every item's size must be as assumed
    header = start - 2 - _key_digits(index)
    item_fits = (buf[header] == 0x03) & (buf[start - 1] == 0) & (int32_at(buf, start) == first_size[doc])
    for k in range(_MAX_KEY_DIGITS):
        digits = _key_digits(index)
        has = k < digits
        digit = index // 10 ** np.maximum(digits - 1 - k, 0) % 10
        item_fits &= ~has | (buf[header + 1 + k] == 48 + digit)
    uniform &= np.bincount(doc[~item_fits], minlength=len(ok)) == 0
    size = first_size[doc]

    walked = np.flatnonzero(ok & ~uniform)
    if len(walked) == 0:
        keep = uniform[doc]
        return doc[keep], start[keep], size[keep], uniform
    plain = uniform.copy()
    parts_doc, parts_start, parts_size = [doc[uniform[doc]]], [start[uniform[doc]]], [size[uniform[doc]]]
    for d in walked.tolist():
        found = _walk_items(raw, int(array_start[d]), int(array_size[d]))
        if found is None:
            continue
        plain[d] = True
        parts_doc.append(np.full(len(found[0]), d, dtype=np.int64))
        parts_start.append(np.asarray(found[0], dtype=np.int64))
        parts_size.append(np.asarray(found[1], dtype=np.int64))
    doc, start, size = (np.concatenate(p) for p in (parts_doc, parts_start, parts_size))
    order = np.argsort(doc, kind="stable")
    return doc[order], start[order], size[order], plain


def _uniform_items(count: np.ndarray, array_start: np.ndarray,
                   item_size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(document, item start, index) of every element of arrays of ``count`` items of ``item_size``."""
    doc = np.repeat(np.arange(len(count)), count)
    first = np.cumsum(count) - count
    index = np.arange(len(doc)) - first[doc]
    # element i starts after the int32 size and i elements; its item after "\x03", the key, NUL
    element = array_start[doc] + 4 + _element_bytes(index, item_size[doc])
    return doc, element + 2 + _key_digits(index), index


def _walk_items(raw: bytes, array_start: int, array_size: int) -> tuple[list[int], list[int]] | None:
    """Item starts and sizes of an array of embedded documents keyed "0", "1", ... of varying
    sizes, element by element; None when it is anything else."""
    pos, end = array_start + 4, array_start + array_size - 1
    starts, sizes = [], []
    while pos < end:
        header = b"\x03" + str(len(starts)).encode() + b"\x00"
        item = pos + len(header)
        if raw[pos:item] != header or item + 5 > end:
            return None
        size = _INT32.unpack_from(raw, item)[0]
        if size < 5 or item + size > end:
            return None
        starts.append(item)
        sizes.append(size)
        pos = item + size
    return starts, sizes
