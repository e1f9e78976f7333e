"""``erase_user(user_id)``: delete a user and their devices' data everywhere, and record it.

The warehouse part is schema-driven rather than a list of tables: every base table in the
data schemas is inspected, and rows are deleted by the columns that identify a person
(``user_id``, ``owner_user_id``) or one of their devices (``device_id``, ``devid``), by the parent
key of dlt child tables, and by free text for the quarantine/reject tables that keep the
original document. A model added later is therefore covered without editing this module.
Views (including the seed 004 views) hold nothing of their own.

Aggregates over groups (``agg_monthly_health_by_age_group``) carry no user key; they are
rebuilt from the per-user tables on the next transform run.

Idempotent: a second call deletes nothing and records an erasure with zero counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime

from iot_core.connections import mongo_client, mongo_db, pg_connect
from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

WAREHOUSE_SCHEMAS = ("raw", "stage", "agg", "curated", "ml", "ops")
USER_COLUMNS = ("user_id", "owner_user_id")
DEVICE_COLUMNS = ("device_id", "devid")
DOCUMENT_COLUMNS = ("document", "raw_value", "source_id")  # free text that may mention the user
KEEP_TABLES = {("ops", "erasures")}

MONGO_DEVICE_COLLECTIONS = {"heart_rates": "device_id", "steps": "device_id", "sleeps": "device_id",
                            "air_quality": "devid"}

ERASURES_DDL = """
create table if not exists ops.erasures (
    id bigserial primary key,
    user_id_sha256 text not null,
    erased_at timestamptz not null default now(),
    device_count int not null,
    deleted_rows jsonb not null
)"""


def user_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


def _user_devices(user_id: str, settings: Settings, mongo) -> set[str]:
    devices: set[str] = set()
    if mongo is not None:
        for doc in mongo["users"].find({"$or": [{"_id": user_id}, {"user_id": user_id}]}, {"devices": 1}):
            devices.update(d for d in doc.get("devices") or [] if isinstance(d, str))
        for doc in mongo["devices"].find({"owner_user_id": user_id}, {"device_id": 1}):
            devices.add(doc.get("device_id") or doc["_id"])
    with pg_connect("superuser", settings=settings) as conn:
        for table, sql in (
            ("raw.users", "select d from raw.users, jsonb_array_elements_text("
                          "case when jsonb_typeof(devices) = 'array' then devices else '[]' end) d where user_id = %s"),
            ("raw.devices", "select device_id from raw.devices where owner_user_id = %s"),
            ("stage.dim_devices", "select device_id from stage.dim_devices where owner_user_id = %s"),
        ):
            if conn.execute("select to_regclass(%s)", (table,)).fetchone()[0]:
                devices.update(r[0] for r in conn.execute(sql, (user_id,)) if r[0])
    return devices


def _erase_mongo(db, user_id: str, devices: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    existing = set(db.list_collection_names())
    if "users" in existing:
        counts["mongo.users"] = db["users"].delete_many({"$or": [{"_id": user_id}, {"user_id": user_id}]}).deleted_count
    if "devices" in existing:
        counts["mongo.devices"] = db["devices"].delete_many(
            {"$or": [{"_id": {"$in": devices}}, {"device_id": {"$in": devices}}, {"owner_user_id": user_id}]}
        ).deleted_count
    for coll, field in MONGO_DEVICE_COLLECTIONS.items():
        if coll in existing:
            counts[f"mongo.{coll}"] = db[coll].delete_many({field: {"$in": devices}}).deleted_count
    if "rejected_writes" in existing:  # refused writes keep the whole document
        ors = [{"user_id": user_id}, {"document.user_id": user_id}, {"document._id": user_id},
               {"document.owner_user_id": user_id}]
        for field in ("device_id", "devid"):
            ors += [{field: {"$in": devices}}, {f"document.{field}": {"$in": devices}}]
        counts["mongo.rejected_writes"] = db["rejected_writes"].delete_many({"$or": ors}).deleted_count
    return counts


def _erase_warehouse(conn, user_id: str, devices: list[str]) -> dict[str, int]:
    columns: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in conn.execute(
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns c "
        "join information_schema.tables t using (table_schema, table_name) "
        "where c.table_schema = any(%s) and t.table_type = 'BASE TABLE'", (list(WAREHOUSE_SCHEMAS),)):
        columns.setdefault((schema, table), set()).add(column)

    # whole-identifier matches only ("w1" must not hit "w10")
    patterns = [rf"(^|[^A-Za-z0-9_]){re.escape(x)}([^A-Za-z0-9_]|$)" for x in (user_id, *devices)]
    counts: dict[str, int] = {}
    # children first: dlt child tables are found through their parent's key
    ordered = sorted(columns, key=lambda st: ("__" not in st[1], st))
    for schema, table in ordered:
        if (schema, table) in KEEP_TABLES or table.startswith("_dlt"):
            continue
        cols = columns[(schema, table)]
        conditions, params = [], []
        for c in USER_COLUMNS:
            if c in cols:
                conditions.append(f"{c} = %s")
                params.append(user_id)
        for c in DEVICE_COLUMNS:
            if c in cols:
                conditions.append(f"{c} = any(%s)")
                params.append(devices)
        if "__" in table and "_parent_id" in cols:
            parent = table.split("__", 1)[0]
            if (schema, parent) in columns and "device_id" in columns[(schema, parent)]:
                conditions.append(f"_parent_id in (select _id from {schema}.{parent} where device_id = any(%s))")
                params.append(devices)
        for c in DOCUMENT_COLUMNS:
            if c in cols:
                conditions.append(f"{c}::text ~ any(%s)")
                params.append(patterns)
        if table == "users" and "_id" in cols:
            conditions.append("_id = %s")
            params.append(user_id)
        if not conditions:
            continue
        cur = conn.execute(f'delete from "{schema}"."{table}" where ' + " or ".join(conditions), params)
        if cur.rowcount:
            counts[f"{schema}.{table}"] = cur.rowcount
    return counts


def _refresh_continuous_aggregates(settings: Settings) -> None:
    """With TimescaleDB, continuous aggregates keep their own materialized rows: recompute them
    over their whole range so no bucket still reflects the deleted readings (outside a
    transaction, as TimescaleDB requires)."""
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_extension where extname = 'timescaledb'").fetchone():
            return
        views = conn.execute("select format('%I.%I', view_schema, view_name) "
                             "from timescaledb_information.continuous_aggregates").fetchall()
        for (view,) in views:
            conn.execute("call refresh_continuous_aggregate(%s::regclass, null, null)", (view,))


def erase_user(user_id: str, settings: Settings | None = None, progress: bool = True) -> dict:
    """Remove ``user_id`` and their devices' data from MongoDB and every warehouse layer.

    Returns ``{"user_id_sha256", "devices", "deleted": {place: rows}}`` and records the same in
    ``ops.erasures`` (the hash, never the id itself). Uses the superuser role (admin command).
    """
    s = settings or get_settings()
    client = mongo_client(s)
    try:
        db = mongo_db(client, s)
        devices = sorted(_user_devices(user_id, s, db))
        if progress:
            log.info("erasing user (sha256 %s) with %d device(s)", user_hash(user_id)[:12], len(devices))
        counts = _erase_mongo(db, user_id, devices)
    finally:
        client.close()
    with pg_connect("superuser", settings=s) as conn:  # one transaction: all layers or nothing
        counts.update(_erase_warehouse(conn, user_id, devices))
        conn.execute(ERASURES_DDL)
        conn.execute("insert into ops.erasures (user_id_sha256, erased_at, device_count, deleted_rows) "
                     "values (%s, %s, %s, %s)",
                     (user_hash(user_id), datetime.now(UTC), len(devices), json.dumps(counts)))
    _refresh_continuous_aggregates(s)
    if progress:
        for place, n in sorted(counts.items()):
            log.info("  %-40s %8d rows", place, n)
    return {"user_id_sha256": user_hash(user_id), "devices": devices, "deleted": counts}
