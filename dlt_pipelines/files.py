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
import pyarrow.csv as pacsv

LOAD_ID = "_dlt_load_id"
_LOAD_ID_FIELD = pa.field(LOAD_ID, pa.string(), nullable=False)


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


class CsvTableWriter:
    """Appends Arrow tables of one schema to one CSV file, adding the ``_dlt_load_id`` column."""

    def __init__(self, path: Path, schema: pa.Schema, load_id: str):
        self.path = path
        self.schema = with_load_id(schema)
        self.load_id = load_id
        self.rows = 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        # Header written by the writer; nulls are empty fields, which dlt's COPY reads as NULL.
        self._writer = pacsv.CSVWriter(self._file, self.schema)

    def write(self, table: pa.Table | None) -> None:
        if table is None or table.num_rows == 0:
            return
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
