"""The extract's CSV load files: PostgreSQL reads back exactly the timestamps written (the writer
formats them itself, vectorised, instead of pyarrow's per-value formatting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from dlt_pipelines.files import CsvTableWriter, timestamp_text
from iot_core.connections import pg_connect

TS = pa.timestamp("us", tz="UTC")

MOMENTS = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # just before the epoch: floor division
    datetime(2000, 2, 29, 12, 0, 0, 1, tzinfo=UTC),  # leap day of a century leap year
    datetime(2100, 3, 1, tzinfo=UTC),  # the day after a non-leap century's February
    datetime(2024, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 11, 23, 2, 15, 48, 739_000, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    None,
]


def copied_back(tmp_path, table: pa.Table) -> list[tuple]:
    """Write ``table`` with the extract's writer and COPY the file into a temporary table."""
    writer = CsvTableWriter(tmp_path / "t.csv", table.schema, "load-1")
    writer.write(table)
    file = writer.close()
    with pg_connect() as conn:
        conn.execute("create temp table t (k integer, at timestamptz, _dlt_load_id text)")
        with open(file.path, "rb") as fh, conn.cursor().copy(
                "copy t from stdin with (format csv, header true)") as copy:
            copy.write(fh.read())
        return conn.execute("select k, at, _dlt_load_id from t order by k").fetchall()


def test_postgres_reads_back_every_timestamp_written(services, tmp_path):
    table = pa.table({"k": pa.array(range(len(MOMENTS)), pa.int32()), "at": pa.array(MOMENTS, TS)})
    rows = copied_back(tmp_path, table)
    assert [r[1] for r in rows] == MOMENTS
    assert {r[2] for r in rows} == {"load-1"}


def test_random_timestamps_round_trip(services, tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)
    micros = rng.integers(-2_000_000_000_000_000, 4_000_000_000_000_000, 2_000)
    table = pa.table({"k": pa.array(range(len(micros)), pa.int32()), "at": pa.array(micros, TS)})
    rows = copied_back(tmp_path, table)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert [r[1] for r in rows] == [epoch + timedelta(microseconds=int(m)) for m in micros]


@pytest.mark.parametrize("offset", [0, 1])
def test_text_keeps_nulls_in_place(offset):
    array = pa.array([MOMENTS[0], None, MOMENTS[2], None], TS).slice(offset)  # a slice has a buffer offset
    expected = ["1970-01-01 00:00:00.000000+00", None, "2000-02-29 12:00:00.000001+00", None][offset:]
    assert timestamp_text(array).to_pylist() == expected


def test_years_beyond_9999_fall_back_to_pyarrow():
    # timestamp[us] reaches year 294,247; such values are not written with a 4-digit year
    far = pa.array([253_402_300_800_000_000], TS)  # 10000-01-01
    assert timestamp_text(far).to_pylist() == far.cast(pa.string()).to_pylist()
