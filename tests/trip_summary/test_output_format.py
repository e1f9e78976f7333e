"""The day's file reads like the seed's: same Parquet schema (root name, columns, types, repetition),
the same pandas metadata, so pandas, pyarrow and Athena (Hive/Trino readers) see one table."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from trips.config import load_config
from trips.lake import Lake
from trips.output_format import rename_schema_root, schema_root_name
from trips.summary import DayReport, merge_parts, run_days, shard_devices, summarise_devices, write_part

from .conftest import DAY1, run_baseline

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def seed_file(edge_lake, tmp_path_factory):
    root, config_path = edge_lake
    keep = tmp_path_factory.mktemp("seed-output")
    run_baseline(root, config_path, DAY1, DAY1, keep=keep)
    return keep / "tripsummary" / "2026" / "11" / "20" / "20261120.parquet"


def _shape(path) -> dict:
    """Everything a reader of the file sees, except the writer's name and version."""
    file = pq.ParquetFile(path)
    pandas_meta = json.loads(file.metadata.metadata[b"pandas"])
    pandas_meta.pop("creator"), pandas_meta.pop("pandas_version")
    columns = [(c.name, c.physical_type, c.logical_type.type, c.max_definition_level)
               for c in (file.schema.column(i) for i in range(len(file.schema)))]
    return {"root": schema_root_name(path), "arrow": file.schema_arrow.remove_metadata(), "columns": columns,
            "pandas": pandas_meta}


def _same_as_seed(path, seed_file) -> None:
    ours, seed = _shape(path), _shape(seed_file)
    assert ours["root"] == seed["root"] == "schema"
    assert ours["arrow"].equals(seed["arrow"]), (ours["arrow"], seed["arrow"])
    # INT64 without an annotation (pyarrow) and INT64 annotated as a signed 64-bit integer (DuckDB) are one type
    normalise = lambda cols: [(n, p, "NONE" if (p, t) == ("INT64", "INT") else t, d) for n, p, t, d in cols]  # noqa: E731
    assert normalise(ours["columns"]) == normalise(seed["columns"])
    assert ours["pandas"] == seed["pandas"]
    got, expected = pd.read_parquet(path), pd.read_parquet(seed_file)
    assert got.dtypes.equals(expected.dtypes) and got.index.equals(expected.index)


def test_local_day_file_reads_as_the_seeds(edge_lake, seed_file):
    """A local lake's file is written by DuckDB: the schema root is renamed, the pandas metadata added."""
    root, config_path = edge_lake
    lake = Lake(root)
    [result] = run_days(lake, load_config(config_path), DAY1, DAY1)
    assert result.path and pq.ParquetFile(result.path).metadata.created_by.startswith("DuckDB")
    _same_as_seed(result.path, seed_file)
    # DuckDB reads its renamed file back
    con = lake.duckdb()
    assert con.execute("select count(*) from read_parquet($f)", {"f": [result.path]}).fetchall()[0][0] == result.rows


def test_merged_day_file_reads_as_the_seeds(edge_lake, seed_file):
    """The DAG's merge (and S3) write through pyarrow: the same shape."""
    root, config_path = edge_lake
    lake, config = Lake(root), load_config(config_path)
    shards = shard_devices(config, 3)
    for index, devices in enumerate(shards):
        table, report = summarise_devices(lake, config, DAY1, devices=devices)
        write_part(lake, DAY1, "format-check", index, table, report)
    _, path, report = merge_parts(lake, DAY1, "format-check", shards)
    assert report == DayReport() and pq.ParquetFile(path).metadata.created_by.startswith("parquet-cpp-arrow")
    _same_as_seed(path, seed_file)


def test_renaming_the_root_keeps_the_data(tmp_path, seed_file):
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(seed_file.read_bytes())
    rename_schema_root(copy, "a_much_longer_name_than_before")
    assert schema_root_name(copy) == "a_much_longer_name_than_before"
    assert pq.read_table(copy).equals(pq.read_table(seed_file))
    rename_schema_root(copy, "s")
    assert schema_root_name(copy) == "s" and pq.read_table(copy).equals(pq.read_table(seed_file))
