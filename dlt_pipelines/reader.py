"""Read one collection's window of ``_ingested_at`` from MongoDB and turn it into Arrow batches.

One range query per collection and window (``start <= _ingested_at < end``), streamed with a
server-side cursor: no count, no skip/limit paging. Each document is validated and flattened in
the same pass (dlt_pipelines.contract), so good rows, child rows and quarantine rows come out of
one read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
from bson import json_util

from dlt_pipelines import contract
from dlt_pipelines.tables import CHILD_SCHEMAS, PARENT_SCHEMAS, QUARANTINE_SCHEMA, ColumnBuffer

# Documents per MongoDB batch / rows per Arrow table (one Arrow table is one dlt item).
MONGO_BATCH_SIZE = 5_000
ARROW_BATCH_ROWS = 20_000

_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS


@dataclass
class Batch:
    """Arrow tables from one slice of a collection: good rows, their child rows, quarantined documents."""

    collection: str
    rows: pa.Table | None = None
    children: pa.Table | None = None
    quarantine: pa.Table | None = None


@dataclass
class ReadCounts:
    documents: int = 0
    rows: int = 0
    child_rows: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def window_query(start: datetime | None, end: datetime) -> dict:
    cond: dict = {"$lt": end}
    if start is not None:
        cond["$gte"] = start
    return {"_ingested_at": cond}


def quarantine_row(collection: str, doc: dict, reason: str, now: datetime) -> dict:
    return {
        "collection": collection,
        "source_id": str(doc.get("_id")),
        "reason": reason,
        "document": json_util.dumps(doc, json_options=_JSON_OPTIONS),
        "_ingested_at": doc.get("_ingested_at") if isinstance(doc.get("_ingested_at"), datetime) else None,
        "quarantined_at": now,
    }


def read_collection(db, collection: str, start: datetime | None, end: datetime, ctx: contract.Context,
                    counts: ReadCounts | None = None, batch_rows: int = ARROW_BATCH_ROWS) -> Iterator[Batch]:
    """Batches of the documents of ``collection`` with ``start <= _ingested_at < end``."""
    counts = counts if counts is not None else ReadCounts()
    parent_schema = PARENT_SCHEMAS.get(collection)
    parents = ColumnBuffer(parent_schema) if parent_schema is not None else None
    children = ColumnBuffer(CHILD_SCHEMAS[collection]) if collection in CHILD_SCHEMAS else None
    quarantine = ColumnBuffer(QUARANTINE_SCHEMA)
    flatten = contract.flatten
    devices_as_json = collection == "users"
    history_as_json = collection == "devices"

    def take() -> Batch:
        return Batch(collection, parents.take() if parents else None, children.take() if children else None,
                     quarantine.take())

    cursor = db[collection].find(window_query(start, end), batch_size=MONGO_BATCH_SIZE)
    try:
        for doc in cursor:
            counts.documents += 1
            try:
                flat = flatten(collection, doc, ctx)
            except contract.BadDocument as bad:
                quarantine.append(quarantine_row(collection, doc, str(bad), ctx.now))
                counts.quarantined += 1
                counts.reasons[bad.kind] = counts.reasons.get(bad.kind, 0) + 1
            else:
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
                    for child in flat.children:
                        child["_parent_id"] = doc["_id"]
                        child["_ingested_at"] = doc["_ingested_at"]
                        children.append(child)
                    counts.child_rows += len(flat.children)
            if (parents and parents.rows >= batch_rows) or (children and children.rows >= batch_rows) \
                    or quarantine.rows >= batch_rows:
                yield take()
    finally:
        cursor.close()
    last = take()
    if last.rows is not None or last.children is not None or last.quarantine is not None:
        yield last
