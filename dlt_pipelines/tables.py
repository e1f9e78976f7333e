"""The ``raw`` tables of docs/contracts.md §2 as Arrow schemas, and a columnar buffer that turns
validated rows into Arrow tables in the same pass as the MongoDB read."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
F64 = pa.float64()

QUARANTINE = "quarantine"
CHILD_SUFFIX = "__metrics"

# Key columns are non-nullable in Arrow as in the dlt hints, so dlt does not rebuild every table.
_ID = pa.field("_id", STR, nullable=False)

PARENT_SCHEMAS: dict[str, pa.Schema] = {
    # ts as sent; ts_utc normalised by the contract (iot_core.timestamps); ts_sent the original
    # when the API normalised ts
    "air_quality": pa.schema([_ID, ("devid", STR), ("ts", STR), ("ts_utc", TS), ("ts_sent", STR),
                              ("iaq", F64), ("temperature", F64),
                              ("humidity", F64), ("pressure", F64), ("voc", F64), ("co2", F64),
                              ("iaq_accuracy", F64), ("_ingested_at", TS)]),
    **{bucket: pa.schema([_ID, ("device_id", STR), ("created_at", TS), ("ended_at", TS),
                          ("sample_count", pa.int32()), ("_ingested_at", TS)])
       for bucket in ("heart_rates", "steps", "sleeps")},
    "users": pa.schema([_ID, ("user_id", STR), ("age", pa.int32()), ("height", pa.int32()),
                        ("gender", STR), ("email", STR), ("dob", TS), ("created_at", TS), ("devices", STR),
                        ("share_with_research_asof", TS), ("share_with_public_asof", TS),
                        ("share_with_friends_asof", TS), ("_ingested_at", TS)]),
    "devices": pa.schema([_ID, ("device_id", STR), ("kind", STR), ("owner_user_id", STR), ("lat", F64),
                          ("long", F64), ("location_description", STR), ("building", STR), ("floor", STR),
                          ("room", STR), ("manufacturer_name", STR), ("manufacturer_website", STR),
                          ("model", STR), ("mac", STR), ("installed_at", TS), ("active", pa.bool_()),
                          ("history", STR), ("_ingested_at", TS)]),
}

_CHILD_KEY = [pa.field("_parent_id", STR, nullable=False), pa.field("idx", pa.int32(), nullable=False)]
CHILD_SCHEMAS: dict[str, pa.Schema] = {
    "heart_rates": pa.schema([*_CHILD_KEY, ("ts", TS), ("bpm", F64), ("confidence", F64), ("_ingested_at", TS)]),
    "steps": pa.schema([*_CHILD_KEY, ("ts", TS), ("steps", pa.int64()), ("_ingested_at", TS)]),
    "sleeps": pa.schema([*_CHILD_KEY, ("start_ts", TS), ("end_ts", TS), ("duration", pa.int64()),
                         ("_ingested_at", TS)]),
}

QUARANTINE_SCHEMA = pa.schema([pa.field("collection", STR, nullable=False), pa.field("source_id", STR, nullable=False), ("reason", STR), ("document", STR),
                               ("_ingested_at", TS), ("quarantined_at", TS)])

# Columns holding JSON text in Arrow that must be jsonb in PostgreSQL.
JSON_COLUMNS = {"users": ("devices",), "devices": ("history",), QUARANTINE: ("document",)}

PARENT_KEY = ("_id",)
CHILD_KEY = ("_parent_id", "idx")
QUARANTINE_KEY = ("collection", "source_id")


# Tables whose `_ingested_at` the stage models use as their incremental cursor (indexed).
CURSOR_INDEXED = (*PARENT_SCHEMAS, QUARANTINE)


def child_table(collection: str) -> str:
    return f"{collection}{CHILD_SUFFIX}"


def table_keys() -> dict[str, tuple[str, ...]]:
    """Merge key of every raw table (also its unique index)."""
    keys: dict[str, tuple[str, ...]] = {t: PARENT_KEY for t in PARENT_SCHEMAS}
    keys.update({child_table(t): CHILD_KEY for t in CHILD_SCHEMAS})
    keys[QUARANTINE] = QUARANTINE_KEY
    return keys


def column_hints(table: str) -> dict[str, dict[str, Any]]:
    """dlt column hints: JSON text columns become jsonb; keys are not nullable."""
    hints: dict[str, dict[str, Any]] = {c: {"data_type": "json"} for c in JSON_COLUMNS.get(table, ())}
    for c in table_keys()[table]:
        hints[c] = {"nullable": False}
    return hints


class ColumnBuffer:
    """Rows appended as dicts, handed out as an Arrow table of a fixed schema every ``batch_rows`` rows."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.names = schema.names
        self.columns: list[list] = [[] for _ in self.names]
        self.rows = 0

    def append(self, row: dict) -> None:
        for values, name in zip(self.columns, self.names, strict=True):
            values.append(row.get(name))
        self.rows += 1

    def extend(self, rows: list[dict], same: dict[str, Any]) -> None:
        """Many rows at once, column by column (the items of a bucket); ``same`` holds the values
        every row shares (its parent's key and ``_ingested_at``)."""
        for values, name in zip(self.columns, self.names, strict=True):
            if name in same:
                values.extend([same[name]] * len(rows))
            else:
                values.extend([row.get(name) for row in rows])
        self.rows += len(rows)

    def append_values(self, values: list) -> None:
        """A row given as values in schema order (the fast path: no dict)."""
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)
        self.rows += 1

    def take(self) -> pa.Table | None:
        if not self.rows:
            return None
        table = pa.Table.from_arrays(
            [pa.array(values, type=f.type) for values, f in zip(self.columns, self.schema, strict=True)],
            schema=self.schema)
        self.columns = [[] for _ in self.names]
        self.rows = 0
        return table
