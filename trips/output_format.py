"""The summary file as the seed writes it, so that pandas and Athena read ours exactly like the seed's.

The seed writes with ``pa.Table.from_pandas(df)`` and ``pq.write_table``: the Parquet schema's root is
named ``schema`` and the footer carries the ``pandas`` key (index, column and dtype metadata). DuckDB,
which writes a local day's file here (so that ``iot trips`` never imports pyarrow, about 0.2-0.5 s),
names the root ``duckdb_schema`` and has no option to change it; it does write key-value metadata.
So the pandas metadata goes in through ``KV_METADATA``, and :func:`rename_schema_root` rewrites the
root's name in the finished file's footer (the data pages are not touched: only the footer moves).
"""

from __future__ import annotations

import json
import os
import struct

ROOT_NAME = "schema"  # what pyarrow (and so the seed) names the root of a Parquet schema

# (column, pandas_type, numpy_type) of the seed's DataFrame, in its column order
_PANDAS_COLUMNS = (
    ("DeviceID", "unicode", "object"), ("Message", "unicode", "object"), ("Signal", "unicode", "object"),
    ("Aggregation", "unicode", "object"), ("Value", "float64", "float64"), ("Count", "int64", "int64"),
    ("Duration", "float64", "float64"), ("TripStart", "int64", "int64"), ("TripEnd", "int64", "int64"),
    ("TripID", "unicode", "object"), ("Cluster", "unicode", "object"),
)


def pandas_metadata(num_rows: int, creator: tuple[str, str]) -> str:
    """The ``pandas`` footer entry pyarrow writes for the seed's DataFrame (a default RangeIndex of
    ``num_rows`` rows, stored as metadata only). ``creator``: (library, version) that wrote the file;
    ``pandas_version`` is null, pandas is not involved (neither pandas nor pyarrow reads it)."""
    return json.dumps({
        "index_columns": [{"kind": "range", "name": None, "start": 0, "stop": num_rows, "step": 1}],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": name, "field_name": name, "pandas_type": pandas_type, "numpy_type": numpy_type,
                     "metadata": None} for name, pandas_type, numpy_type in _PANDAS_COLUMNS],
        "attributes": {},
        "creator": {"library": creator[0], "version": creator[1]},
        "pandas_version": None,
    })


# -- the Parquet footer: FileMetaData in Thrift's compact protocol ------------------------------------------
# FileMetaData field 2 is the schema, a list of SchemaElement; its first element is the root, whose
# field 4 is the name. Only the bytes of that one string change.
_MAGIC = b"PAR1"
_BOOL_TRUE, _BOOL_FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def field_header(self, last_id: int) -> tuple[int, int]:
        """(type, field id) of the next field; type 0 is the struct's end."""
        header = self.byte()
        kind, delta = header & 0x0F, header >> 4
        if kind == 0:
            return 0, 0
        if delta:
            return kind, last_id + delta
        raw = self.varint()
        return kind, (raw >> 1) ^ -(raw & 1)  # zigzag i16

    def list_header(self) -> tuple[int, int]:
        header = self.byte()
        size = header >> 4
        if size == 15:
            size = self.varint()
        return header & 0x0F, size

    def skip(self, kind: int) -> None:
        if kind in (_BOOL_TRUE, _BOOL_FALSE):
            return  # the value lives in the field header (inside a list it is one byte: handled below)
        if kind == _BYTE:
            self.pos += 1
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.pos += 8
        elif kind == _BINARY:
            self.pos += self.varint()
        elif kind in (_LIST, _SET):
            elem, size = self.list_header()
            for _ in range(size):
                if elem in (_BOOL_TRUE, _BOOL_FALSE):
                    self.pos += 1
                else:
                    self.skip(elem)
        elif kind == _MAP:
            size = self.varint()
            if size:
                kinds = self.byte()
                for _ in range(size):
                    self.skip(kinds >> 4)
                    self.skip(kinds & 0x0F)
        elif kind == _STRUCT:
            last = 0
            while True:
                field, last = self.field_header(last)
                if field == 0:
                    return
                self.skip(field)
        else:
            raise ValueError(f"unknown Thrift compact type {kind}")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _root_name_span(footer: bytes) -> tuple[int, int, bytes]:
    """(start, end, name) of the root's name in the footer: the bytes from its length prefix to its end."""
    reader, last = _Reader(footer), 0
    while True:
        kind, last = reader.field_header(last)
        if kind == 0:
            raise ValueError("Parquet footer without a schema")
        if last != 2:
            reader.skip(kind)
            continue
        elem, size = reader.list_header()
        if kind != _LIST or elem != _STRUCT or size < 1:
            raise ValueError("Parquet footer: the schema is not a list of elements")
        field_last = 0
        while True:
            field, field_last = reader.field_header(field_last)
            if field == 0:
                raise ValueError("Parquet footer: the schema root has no name")
            if field_last == 4 and field == _BINARY:
                start = reader.pos
                length = reader.varint()
                name = footer[reader.pos:reader.pos + length]
                return start, reader.pos + length, name
            reader.skip(field)


def schema_root_name(path: str | os.PathLike) -> str:
    with open(path, "rb") as fh:
        return _root_name_span(_read_footer(fh)[0])[2].decode()


def _read_footer(fh) -> tuple[bytes, int]:
    """(footer bytes, offset where the footer starts) of an open Parquet file."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(size - 8)
    tail = fh.read(8)
    if size < 12 or tail[4:] != _MAGIC:
        raise ValueError("not a Parquet file (no PAR1 at its end)")
    length = struct.unpack("<I", tail[:4])[0]
    start = size - 8 - length
    fh.seek(start)
    return fh.read(length), start


def rename_schema_root(path: str | os.PathLike, name: str = ROOT_NAME) -> None:
    """Rename the root of a local Parquet file's schema in place (the footer is rewritten at the end)."""
    with open(path, "r+b") as fh:
        footer, start = _read_footer(fh)
        begin, end, old = _root_name_span(footer)
        if old == name.encode():
            return
        encoded = name.encode()
        new_footer = footer[:begin] + _varint(len(encoded)) + encoded + footer[end:]
        fh.seek(start)
        fh.write(new_footer + struct.pack("<I", len(new_footer)) + _MAGIC)
        fh.truncate()
