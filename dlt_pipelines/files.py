"""Load files written by the reader itself: one CSV file per raw table and collection, handed to dlt
as an import (``dlt.mark.with_file_import``).

dlt would otherwise write every Arrow item to a parquet file during extract and rewrite it as
CSV during normalize (its csv loader format is PostgreSQL ``COPY``); writing the CSV once here,
with the same pyarrow writer dlt uses, skips both steps. The file carries ``_dlt_load_id`` (the
load package's id), which dlt's normalizer would otherwise add.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

LOAD_ID = "_dlt_load_id"
_LOAD_ID_FIELD = pa.field(LOAD_ID, pa.string(), nullable=False)

_US_PER_DAY = 86_400_000_000
# "YYYY-MM-DD HH:MM:SS.ffffff+00": its width and the fixed characters by position
_TEXT_WIDTH = 29
_FIXED = {4: "-", 7: "-", 10: " ", 13: ":", 16: ":", 19: ".", 26: "+", 27: "0", 28: "0"}


@dataclass(frozen=True)
class TableFile:
    """A finished CSV file for one raw table: what dlt needs to import it."""

    path: str
    rows: int
    schema: pa.Schema  # with _dlt_load_id; dlt derives the table's columns from it

    def hints(self) -> pa.Table:
        """An empty table of the file's schema: dlt takes the column types from it."""
        return self.schema.empty_table()


def with_load_id(schema: pa.Schema) -> pa.Schema:
    return schema.append(_LOAD_ID_FIELD)


def _digits(out: np.ndarray, at: int, width: int, value: np.ndarray) -> None:
    """Write ``value`` as ``width`` zero-padded decimal digits at row ``at`` of ``out`` (characters x rows)."""
    for i in range(width - 1, -1, -1):
        value, digit = np.divmod(value, 10)
        out[at + i] = digit
    out[at:at + width] += 48


def timestamp_text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A UTC ``timestamp[us]`` column as PostgreSQL-readable text, ``YYYY-MM-DD HH:MM:SS.ffffff+00``.

    pyarrow's CSV writer formats timestamps one by one (about 1 us each: half the extract's CPU time
    for the metrics tables, whose rows hold two timestamps); this does the same with a few numpy
    operations over the column. Years outside 1-9999 fall back to pyarrow's own text."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    us = array.cast(pa.int64()).fill_null(0).to_numpy()
    days = us // _US_PER_DAY  # floor division: also right before 1970
    time_us = us - days * _US_PER_DAY
    # civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's days_from_civil inverse)
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    valid = np.ones(len(us), dtype=bool) if array.null_count == 0 else array.is_valid().to_numpy(zero_copy_only=False)
    if ((year < 1) | (year > 9999))[valid].any():
        return array.cast(pa.string())
    out = np.empty((_TEXT_WIDTH, len(us)), dtype=np.uint8)  # one row per character: contiguous writes
    for at, char in _FIXED.items():
        out[at] = ord(char)
    for at, width, value in ((0, 4, year), (5, 2, month), (8, 2, day), (11, 2, time_us // 3_600_000_000),
                             (14, 2, time_us // 60_000_000 % 60), (17, 2, time_us // 1_000_000 % 60),
                             (20, 6, time_us % 1_000_000)):
        _digits(out, at, width, value)
    offsets = np.arange(0, (len(us) + 1) * _TEXT_WIDTH, _TEXT_WIDTH, dtype=np.int32)
    text = pa.StringArray.from_buffers(len(us), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(out.T)))
    if array.null_count:  # nulls stay nulls: empty CSV fields, which COPY reads as NULL
        text = pc.if_else(array.is_valid(), text, pa.scalar(None, pa.string()))
    return text


class CsvTableWriter:
    """Appends Arrow tables of one schema to one CSV file, adding the ``_dlt_load_id`` column."""

    def __init__(self, path: Path, schema: pa.Schema, load_id: str):
        self.path = path
        self.schema = with_load_id(schema)
        self.load_id = load_id
        self.rows = 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        # Timestamp columns are written as text formatted here (see timestamp_text); the schema
        # handed to dlt keeps their types.
        self._timestamps = [i for i, f in enumerate(schema) if pa.types.is_timestamp(f.type)]
        text_schema = self.schema
        for i in self._timestamps:
            text_schema = text_schema.set(i, pa.field(text_schema.field(i).name, pa.string()))
        # Header written by the writer; nulls are empty fields, which dlt's COPY reads as NULL.
        self._writer = pacsv.CSVWriter(self._file, text_schema)

    def write(self, table: pa.Table | None) -> None:
        if table is None or table.num_rows == 0:
            return
        for i in self._timestamps:
            table = table.set_column(i, table.field(i).name, timestamp_text(table.column(i)))
        load_ids = pa.array([self.load_id], pa.string()).take(np.zeros(table.num_rows, np.int32))
        self._writer.write_table(table.append_column(_LOAD_ID_FIELD, load_ids))
        self.rows += table.num_rows

    def close(self) -> TableFile:
        self._writer.close()
        self._file.close()
        return TableFile(str(self.path), self.rows, self.schema)

    def abort(self) -> None:
        self._writer.close()
        self._file.close()
        os.unlink(self.path)
