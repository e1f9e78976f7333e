"""Vectorised fast path for air-quality documents: raw BSON batches straight to Arrow columns.

Air-quality readings are most of the volume (one small document per reading). Almost all of them
have exactly the layout the devices send::

    {_id: str, devid: str, ts: str, readings: [7 doubles], _ingested_at: datetime}

in that field order. For such a document every byte except the three strings is known in advance,
so numpy can check and take apart a whole raw batch at once: no Python dict per document. A
document is accepted here only when its bytes match that layout exactly (field names, types,
order, lengths, terminators) and the values pass the contract's checks, done column-wise (ranges,
NaN, a registered device of a kind that sends air quality, ``ts`` a plain
``YYYY-MM-DDTHH:MM:SS`` with ``Z`` or an offset of the contract's range, within the allowed
times). Everything else, however slight the difference (an int reading, an extra field, a ``ts``
with fractions of a second or in another format), is handed back as raw bytes for the
per-document path (contract.flatten), which decides and names the reason. The fast path
therefore accepts a subset of what the contract accepts, with the same values (``ts_utc``
included).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dlt_pipelines import contract
from iot_core import contract as spec

_INT32 = struct.Struct("<i")
_DOUBLE_FIELDS = len(contract.AIR_QUALITY_MEASURES)
# The readings array as an embedded document: int32 size, 7 x (0x01, "<i>\0", 8-byte double), 0x00.
_READINGS_SIZE = 4 + _DOUBLE_FIELDS * 11 + 1
# zero bytes appended to a batch: reads of rejected documents (parked at offset 0) stay inside
PADDING = 256
# whole seconds with "Z" or an offset "±HH:MM" (its range is checked with the contract's bounds)
_TS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
_OFFSET_MIN_S = int(spec.UTC_OFFSET_MIN.total_seconds())
_OFFSET_MAX_S = int(spec.UTC_OFFSET_MAX.total_seconds())


def document_offsets(raw: bytes) -> np.ndarray:
    """Start offsets of the documents of a raw BSON batch (each starts with its int32 size)."""
    offsets = []
    append = offsets.append
    unpack = _INT32.unpack_from
    pos, end = 0, len(raw)
    while pos < end:
        append(pos)
        size = unpack(raw, pos)[0]
        if size < 5:
            raise ValueError(f"raw BSON batch has a document of size {size} at byte {pos}")
        pos += size
    if pos != end:
        raise ValueError("raw BSON batch does not end at a document boundary")
    return np.asarray(offsets, dtype=np.int64)


def int32_at(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    b = buf[pos[:, None] + np.arange(4)].astype(np.int64)
    value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
    return np.where(value >= 1 << 31, value - (1 << 32), value)


def bytes_match(buf: np.ndarray, pos: np.ndarray, expected: bytes) -> np.ndarray:
    want = np.frombuffer(expected, dtype=np.uint8)
    return (buf[pos[:, None] + np.arange(len(want))] == want).all(axis=1)


class Layout:
    """Positions along the documents of a batch; ``ok`` turns False at the first mismatch."""

    def __init__(self, buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray):
        self.buf = buf
        self.ends = starts + sizes
        self.pos = starts + 4
        self.ok = (sizes >= 5) & (self.ends <= len(buf) - PADDING)
        self.pos = np.where(self.ok, self.pos, 0)

    def _guard(self, length: int | np.ndarray) -> None:
        # documents already rejected, or too short for what comes next, are parked at offset 0
        self.ok &= self.pos + length <= self.ends
        self.pos = np.where(self.ok, self.pos, 0)

    def expect(self, expected: bytes) -> None:
        self._guard(len(expected))
        self.ok &= bytes_match(self.buf, self.pos, expected)
        self.pos = self.pos + len(expected)

    def string(self) -> tuple[np.ndarray, np.ndarray]:
        """A BSON string value (int32 length incl. the NUL, bytes, NUL): (data starts, byte lengths)."""
        self._guard(4)
        length = int32_at(self.buf, self.pos)
        self.ok &= (length >= 1) & (self.pos + 4 + length <= self.ends)
        length = np.where(self.ok, length, 1)
        start = np.where(self.ok, self.pos + 4, 0)
        self.ok &= self.buf[start + length - 1] == 0
        self.pos = start + length
        return start, length - 1

    def doubles(self, count: int) -> np.ndarray:
        """An embedded array of exactly ``count`` doubles keyed "0".."count-1"."""
        self._guard(4 + count * 11 + 1)
        self.ok &= int32_at(self.buf, self.pos) == 4 + count * 11 + 1
        base = self.pos + 4
        values = np.empty((len(base), count), dtype=np.float64)
        for i in range(count):
            at = base + i * 11
            self.ok &= bytes_match(self.buf, at, b"\x01" + str(i).encode() + b"\x00")
            values[:, i] = self.buf[(at + 3)[:, None] + np.arange(8)].copy().view("<f8")[:, 0]
        self.ok &= self.buf[base + count * 11] == 0
        self.pos = base + count * 11 + 1
        return values

    def embedded(self) -> tuple[np.ndarray, np.ndarray]:
        """An embedded document or array, skipped: (its start, its size incl. the int32 prefix and
        the terminating NUL, which is checked)."""
        self._guard(5)
        size = int32_at(self.buf, self.pos)
        self.ok &= (size >= 5) & (self.pos + size <= self.ends)
        start = np.where(self.ok, self.pos, 0)
        size = np.where(self.ok, size, 5)
        self.ok &= self.buf[start + size - 1] == 0
        self.pos = start + size
        return start, size

    def int32(self) -> np.ndarray:
        self._guard(4)
        value = int32_at(self.buf, self.pos)
        self.pos = self.pos + 4
        return value

    def int32_or_double(self, key: bytes) -> tuple[np.ndarray, np.ndarray]:
        """A field named ``key`` holding an int32 or a double: (its value as float64, whether it is
        an int32). The only field whose type may vary between items, so it is read with its header."""
        self._guard(len(key) + 6)
        kind = self.buf[self.pos]
        is_int = kind == 0x10
        self.ok &= (is_int | (kind == 0x01)) & bytes_match(self.buf, self.pos + 1, key + b"\x00")
        self.pos = self.pos + len(key) + 2
        width = np.where(is_int, 4, 8)
        self._guard(width)
        double = self.buf[self.pos[:, None] + np.arange(8)].copy().view("<f8")[:, 0]
        value = np.where(is_int, int32_at(self.buf, self.pos).astype(np.float64), double)
        self.pos = self.pos + width
        return value, is_int

    def int64(self) -> np.ndarray:
        self._guard(8)
        value = self.buf[self.pos[:, None] + np.arange(8)].copy().view("<i8")[:, 0]
        self.pos = self.pos + 8
        return value

    def end(self) -> None:
        """The document's terminating NUL, which must be its last byte."""
        self._guard(1)
        self.ok &= (self.buf[self.pos] == 0) & (self.pos + 1 == self.ends)


def utf8_strings(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> pa.Array:
    """A UTF-8 string array gathered from ``length`` bytes at ``start`` of each row (validated)."""
    offsets = np.zeros(len(start) + 1, dtype=np.int32)
    np.cumsum(length, out=offsets[1:])
    index = np.repeat(start - offsets[:-1], length) + np.arange(offsets[-1])
    data = buf[index]
    array = pa.StringArray.from_buffers(len(start), pa.py_buffer(offsets), pa.py_buffer(data))
    array.validate(full=True)  # raises on invalid UTF-8
    return array


def split_air_quality(raw: bytes, schema: pa.Schema, ctx: contract.Context,
                      window_end: datetime) -> tuple[pa.Table, list[bytes]]:
    """Take apart a raw batch of air-quality documents.

    Returns ``(rows, others)``: the plainly valid documents with ``_ingested_at < window_end`` as a
    table of ``schema`` (the raw.air_quality columns) and the raw bytes of every document that is
    not plainly valid (for the per-document path). Plainly valid documents at or after the window
    end are in neither: the next window reads them.
    """
    starts = document_offsets(raw)
    # zero padding: rejected documents are parked at offset 0, whose reads must stay in the buffer
    buf = np.frombuffer(raw + bytes(PADDING), dtype=np.uint8)
    sizes = np.diff(np.append(starts, len(raw)))
    layout = Layout(buf, starts, sizes)
    layout.expect(b"\x02_id\x00")
    id_start, id_len = layout.string()
    layout.expect(b"\x02devid\x00")
    dev_start, dev_len = layout.string()
    layout.expect(b"\x02ts\x00")
    ts_start, ts_len = layout.string()
    layout.expect(b"\x04readings\x00")
    readings = layout.doubles(_DOUBLE_FIELDS)
    layout.expect(b"\x09_ingested_at\x00")
    ingested_ms = layout.int64()
    layout.end()
    ok = layout.ok

    # the contract's value checks, column-wise (NaN fails every comparison, so it is rejected too)
    for i, measure in enumerate(contract.AIR_QUALITY_MEASURES):
        lo, hi = contract.AIR_QUALITY_RANGES[measure]
        ok &= (readings[:, i] >= lo) & (readings[:, i] <= hi)
    try:
        ids = utf8_strings(buf, np.where(ok, id_start, 0), np.where(ok, id_len, 0))
        devids = utf8_strings(buf, np.where(ok, dev_start, 0), np.where(ok, dev_len, 0))
        ts = utf8_strings(buf, np.where(ok, ts_start, 0), np.where(ok, ts_len, 0))
    except pa.ArrowInvalid:  # invalid UTF-8 somewhere: the per-document path sorts it out
        return schema.empty_table(), [raw[s:s + n] for s, n in zip(starts.tolist(), sizes.tolist(), strict=True)]
    ok_arrow = pa.array(ok)
    senders = ctx.devices_sending("air_quality")
    if senders is not None:  # registered, and of a kind that sends air quality
        ok_arrow = pc.and_(ok_arrow, pc.is_in(devids, value_set=pa.array(sorted(senders), pa.string())))
    # ts: only the plain form; parsed, and printed back identically (so no 30 February or 24:00 passes)
    plain_ts = pc.match_substring_regex(ts, _TS_PATTERN)
    head = pc.utf8_slice_codeunits(ts, 0, 19)
    parsed = pc.strptime(head, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    round_trip = pc.equal(pc.strftime(parsed, format="%Y-%m-%dT%H:%M:%S"), head)
    ok_arrow = pc.and_(ok_arrow, pc.and_(plain_ts, round_trip))
    ok = pc.fill_null(ok_arrow, False).to_numpy(zero_copy_only=False)
    offset_s = _offset_s(buf, ts_start, ts_len)
    ok &= (offset_s >= _OFFSET_MIN_S) & (offset_s <= _OFFSET_MAX_S)
    ts_s = pc.fill_null(pc.cast(parsed, pa.int64()), 0).to_numpy(zero_copy_only=False) - offset_s
    ok &= (ts_s >= _epoch_s(contract.MIN_TS)) & (ts_s <= _epoch_s(ctx.max_ts))

    take = ok & (ingested_ms < first_ms_from(window_end))
    rows = np.flatnonzero(take)
    indices = pa.array(rows)
    timestamp = schema.field("_ingested_at").type
    columns = {"_id": ids.take(indices), "devid": devids.take(indices), "ts": ts.take(indices),
               "ts_utc": pa.array(ts_s[rows] * 1_000_000, pa.int64()).cast(timestamp),
               "ts_sent": pa.nulls(len(rows), pa.string()),
               "_ingested_at": pa.array(ingested_ms[rows] * 1000, pa.int64()).cast(timestamp)}
    columns.update((name, pa.array(readings[rows, i])) for i, name in enumerate(contract.AIR_QUALITY_MEASURES))
    table = pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
    others = [raw[s:s + n] for s, n in zip(starts[~ok].tolist(), sizes[~ok].tolist(), strict=True)]
    return table, others


def _offset_s(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """UTC offset in seconds of ``ts`` strings that matched _TS_PATTERN: 0 for "Z" (20 characters),
    else from "±HH:MM" at characters 19-24."""
    has_offset = length == 25
    at = np.where(has_offset, start, 0)
    digit = [buf[at + i].astype(np.int64) - 48 for i in (20, 21, 23, 24)]
    seconds = (digit[0] * 10 + digit[1]) * 3600 + (digit[2] * 10 + digit[3]) * 60
    sign = np.where(buf[at + 19] == ord("-"), -1, 1)
    return np.where(has_offset, sign * seconds, 0)


def _epoch_s(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down (``ts`` has whole seconds here)."""
    return int(moment.timestamp() // 1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def first_ms_from(moment: datetime) -> int:
    """The first whole millisecond at or after ``moment``: a BSON datetime ``t`` (ms) is before
    ``moment`` exactly when ``t < first_ms_from(moment)``."""
    return -(-epoch_us(moment) // 1000)


def last_ms_until(moment: datetime) -> int:
    """The last whole millisecond at or before ``moment``: ``t <= moment`` exactly when ``t <= last_ms_until(moment)``."""
    return epoch_us(moment) // 1000
