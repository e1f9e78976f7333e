"""``erase_user(user_id)``: the right to erasure, everywhere the platform keeps a user's data.

What it does, in this order, holding the extract lock throughout (no load into raw runs meanwhile):

1. **Tombstones first.** Keyed hashes of the user id and of their devices' ids go to
   ``ops.erasure_tombstones``; from then on the extract does not load documents naming them
   (a document written later, or a change the extract has not read yet), it only counts them.
2. **MongoDB**: every collection of the database is looked at (none is skipped because a list
   forgot it): the contract's personal fields (``iot_core.contract.PERSONAL_FIELDS``), the same
   fields inside ``rejected_writes`` documents, and in collections the contract does not describe
   (e.g. the generators' progress records) any document whose values name the user or a device.
3. **The warehouse**, in one transaction holding every dbt model's lock (iot_core.locks), so no
   build writes the user back while it runs: every base table of every schema is inspected
   through the catalog (a table added later is covered without editing this module); rows go by
   the columns that hold a user or device key (the contract's personal columns and their stage
   names), by the pseudonymous ``research_id`` (``ops.research_id``), by the parent key of child
   tables, and by whole-identifier matches in free text (JSON columns, and the text columns of
   tables without a key column: quarantine documents, rejects, run logs).
4. **Files**: the extract's local dlt folder (a package a killed run left behind) and the CSV
   exports (rows of the devices).
5. **The record**: ``ops.erasures`` gets the keyed hash of the user id and the rows removed per
   place, nothing else. With TimescaleDB, the user's rows leave the continuous aggregates'
   materializations and the aggregates are refreshed over what their sources still hold.

Idempotent and resumable: a second run (or a run after a crash at any step) finds what is left and
removes it; the tombstones are written once. What it cannot reach is in docs/privacy.md (the
MongoDB oplog until it rotates, database files until vacuum, Airflow's task logs).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from iot_core import locks
from iot_core.connections import mongo_client, mongo_db, pg_connect
from iot_core.contract import COLLECTIONS, PERSONAL_FIELDS
from iot_core.pseudonyms import keyed_hash
from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Schemas that hold no platform data (PostgreSQL's and TimescaleDB's own, the secret's vault).
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "vault")
SYSTEM_SCHEMA_PREFIXES = ("pg_", "_timescaledb", "timescaledb_")
# The erasure's own record and the tombstones hold keyed hashes only.
KEEP_TABLES = {("ops", "erasures"), ("ops", "erasure_tombstones")}
# dbt builds these schemas; an erasure holds their models' locks.
DBT_SCHEMAS = ("stage", "agg", "curated")

_USER = "user_id"
_DEVICE = "device_id"


def _key_columns(category: str) -> frozenset[str]:
    """Warehouse column names that hold a key of ``category``: the raw columns the contract names
    for it, and the stage names the models give it (``user_id``, ``owner_user_id``, ``device_id``)."""
    names = {p.raw_column for p in PERSONAL_FIELDS if p.category == category and p.raw_column != "_id"}
    names |= {"user_id", "owner_user_id"} if category == _USER else {"device_id"}
    return frozenset(names)


USER_COLUMNS = _key_columns(_USER)
DEVICE_COLUMNS = _key_columns(_DEVICE)
RESEARCH_ID_COLUMN = "research_id"
# list-valued personal columns (raw.users.devices): matched as free text
FREE_TEXT_TYPES = ("json", "jsonb", "text", "character varying", "ARRAY")


def _identifier_pattern(values: Iterable[str]) -> list[str]:
    """Whole-identifier regexes ("w-1" must not hit "w-10" or "w-1-2"; ":", ".", "@", "|" separate)."""
    return [rf"(^|[^A-Za-z0-9_-]){re.escape(v)}([^A-Za-z0-9_-]|$)" for v in values if v]


def _user_devices(user_id: str, settings: Settings, db) -> tuple[set[str], set[str]]:
    """The user's device ids and e-mail addresses, from MongoDB and the warehouse (either may
    already be partly erased by an interrupted run)."""
    devices: set[str] = set()
    emails: set[str] = set()
    if db is not None:
        for doc in db["users"].find({"$or": [{"_id": user_id}, {"user_id": user_id}]}, {"devices": 1, "email": 1}):
            devices.update(d for d in doc.get("devices") or [] if isinstance(d, str))
            if isinstance(doc.get("email"), str):
                emails.add(doc["email"])
        for doc in db["devices"].find({"owner_user_id": user_id}, {"device_id": 1}):
            devices.add(doc.get("device_id") or doc["_id"])
    with pg_connect("superuser", settings=settings) as conn:
        for table, sql in (
            ("raw.users", "select d from raw.users, jsonb_array_elements_text("
                          "case when jsonb_typeof(devices) = 'array' then devices else '[]' end) d where user_id = %s"),
            ("raw.users", "select email from raw.users where user_id = %s"),
            ("raw.devices", "select device_id from raw.devices where owner_user_id = %s"),
            ("stage.dim_devices", "select device_id from stage.dim_devices where owner_user_id = %s"),
            ("stage.research_consent_applied", "select unnest(device_ids) from stage.research_consent_applied"
                                               " where user_id = %s"),
        ):
            if conn.execute("select to_regclass(%s)", (table,)).fetchone()[0]:
                found = {r[0] for r in conn.execute(sql, (user_id,)) if r[0]}
                (emails if "email" in sql else devices).update(found)
    return devices, emails


def _write_tombstones(conn, user_id: str, devices: Iterable[str], settings: Settings) -> None:
    rows = [("user", keyed_hash(user_id, settings))] + [("device", keyed_hash(d, settings)) for d in devices]
    with conn.cursor() as cur:
        cur.executemany("insert into ops.erasure_tombstones (kind, key_hash) values (%s, %s) on conflict do nothing",
                        rows)


# ------------------------------------------------------------------ MongoDB
def _mongo_paths(collection: str) -> dict[str, list[str]]:
    """Document paths of ``collection`` holding a user or device key: {category: [path]}."""
    out: dict[str, list[str]] = {_USER: [], _DEVICE: []}
    for p in PERSONAL_FIELDS:
        if p.collection == collection and p.category in out:
            out[p.category].append(p.path)
    return out


def _mentions(value, patterns: list[re.Pattern]) -> bool:
    if isinstance(value, str):
        return any(p.search(value) for p in patterns)
    if isinstance(value, dict):
        return any(_mentions(k, patterns) or _mentions(v, patterns) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_mentions(v, patterns) for v in value)
    return False


def _erase_mongo(db, user_id: str, devices: list[str], emails: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    patterns = [re.compile(p) for p in _identifier_pattern([user_id, *devices, *emails])]
    for collection in sorted(db.list_collection_names()):
        target = collection
        prefix = ""
        if collection == "rejected_writes":  # refused writes keep the whole document of another collection
            prefix = "document."
        if collection in COLLECTIONS or prefix:
            ors: list[dict] = []
            sources = COLLECTIONS if prefix else [target]
            for source in sources:
                paths = _mongo_paths(source)
                ors += [{prefix + path: user_id} for path in paths[_USER]]
                ors += [{prefix + path: {"$in": devices}} for path in paths[_DEVICE]] if devices else []
            if prefix:
                ors += [{"document_id": {"$in": [user_id, *devices]}}]
            deleted = db[collection].delete_many({"$or": ors}).deleted_count if ors else 0
            if prefix:  # whatever else in a refused document names them
                ids = [d["_id"] for d in db[collection].find({}) if _mentions(d, patterns)]
                deleted += db[collection].delete_many({"_id": {"$in": ids}}).deleted_count if ids else 0
        else:
            # a collection the contract does not describe: look at every document
            ids = [d["_id"] for d in db[collection].find({}) if _mentions(d, patterns)]
            deleted = db[collection].delete_many({"_id": {"$in": ids}}).deleted_count if ids else 0
        if deleted:
            counts[f"mongo.{collection}"] = deleted
    return counts


# ------------------------------------------------------------------ warehouse
def warehouse_tables(conn) -> dict[tuple[str, str], dict[str, str]]:
    """Every base table of every non-system schema: {(schema, table): {column: data type}}."""
    tables: dict[tuple[str, str], dict[str, str]] = {}
    for schema, table, column, data_type in conn.execute("""
            select c.table_schema, c.table_name, c.column_name, c.data_type
            from information_schema.columns c
            join information_schema.tables t using (table_schema, table_name)
            where t.table_type = 'BASE TABLE'
              and c.table_schema <> all(%s)
              and not c.table_schema like any(%s)""",
            (list(SYSTEM_SCHEMAS), [f"{p}%" for p in SYSTEM_SCHEMA_PREFIXES])):
        tables.setdefault((schema, table), {})[column] = data_type
    return tables


def erasure_plan(tables: dict[tuple[str, str], dict[str, str]]) -> dict[tuple[str, str], list[str]]:
    """How each table is searched: {(schema, table): [what]} with what in user_key, device_key,
    research_id, parent, registry_id, free_text:<column>. Tables without any are not searched
    (they hold no user, device or free text: a test checks that every column naming a user or
    device is covered)."""
    plan: dict[tuple[str, str], list[str]] = {}
    for (schema, table), cols in tables.items():
        if (schema, table) in KEEP_TABLES:
            continue
        how = []
        # a key column holds one id; a JSON or array column named like one (raw.users.devices) is a
        # list of them: searched as free text below
        keys = {c for c in set(cols) & (USER_COLUMNS | DEVICE_COLUMNS) if cols[c] in ("text", "character varying")}
        how += [f"key:{c}" for c in sorted(keys)]
        if RESEARCH_ID_COLUMN in cols:
            how.append("research_id")
        if "__" in table and "_parent_id" in cols:
            parent = (schema, table.split("__", 1)[0])
            if parent in tables and set(tables[parent]) & DEVICE_COLUMNS:
                how.append("parent")
        if schema == "raw" and table in ("users", "devices") and "_id" in cols:
            how.append("registry_id")
        for column, data_type in sorted(cols.items()):
            if column in keys:
                continue
            if data_type in ("json", "jsonb", "ARRAY") or (data_type in FREE_TEXT_TYPES and (
                    not keys or column == "source_id")):
                how.append(f"free_text:{column}")
        if how:
            plan[(schema, table)] = how
    return plan


def _erase_warehouse(conn, user_id: str, devices: list[str], emails: list[str]) -> dict[str, int]:
    tables = warehouse_tables(conn)
    locks.lock_models(conn, [f"{s}.{t}" for (s, t) in tables if s in DBT_SCHEMAS])
    plan = erasure_plan(tables)
    patterns = _identifier_pattern([user_id, *devices, *emails])
    counts: dict[str, int] = {}
    # children first: dlt child tables are found through their parent's key
    for schema, table in sorted(plan, key=lambda st: ("__" not in st[1], st)):
        conditions, params = [], []
        for how in plan[(schema, table)]:
            kind, _, column = how.partition(":")
            if kind == "key":
                conditions.append(f'"{column}" = any(%s)')
                params.append([user_id] if column in USER_COLUMNS else devices)
            elif kind == "research_id":
                conditions.append(f'"{RESEARCH_ID_COLUMN}" = ops.research_id(%s)')
                params.append(user_id)
            elif kind == "parent":
                parent = table.split("__", 1)[0]
                device_column = sorted(set(tables[(schema, parent)]) & DEVICE_COLUMNS)[0]
                conditions.append(f'_parent_id in (select _id from "{schema}"."{parent}" '
                                  f'where "{device_column}" = any(%s))')
                params.append(devices)
            elif kind == "registry_id":
                conditions.append("_id = any(%s)")
                params.append([user_id] if table == "users" else devices)
            elif kind == "free_text":
                conditions.append(f'"{column}"::text ~ any(%s)')
                params.append(patterns)
        cur = conn.execute(f'delete from "{schema}"."{table}" where ' + " or ".join(conditions), params)
        if cur.rowcount:
            counts[f"{schema}.{table}"] = cur.rowcount
    return counts


def _erase_from_continuous_aggregates(settings: Settings, user_id: str, devices: list[str]) -> dict[str, int]:
    """With TimescaleDB, continuous aggregates keep their own materialized rows. The user's rows
    are deleted from each one's materialization directly (every period, also those whose source
    chunks retention has dropped), then the aggregate is refreshed from its source's oldest chunk
    on only: refreshing a dropped region would delete the other devices' rows of those periods
    (outside a transaction, as TimescaleDB requires)."""
    counts: dict[str, int] = {}
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_extension where extname = 'timescaledb'").fetchone():
            return counts
        views = conn.execute("select format('%I.%I', a.view_schema, a.view_name), "
                             "format('%I.%I', a.materialization_hypertable_schema, a.materialization_hypertable_name), "
                             "min(c.range_start) "
                             "from timescaledb_information.continuous_aggregates as a "
                             "left join timescaledb_information.chunks as c on c.hypertable_schema = a.hypertable_schema "
                             "and c.hypertable_name = a.hypertable_name group by 1, 2").fetchall()
        for view, materialization, oldest_source_chunk in views:
            cols = {c for (c,) in conn.execute("select attname from pg_attribute where attrelid = %s::regclass "
                                               "and attnum > 0 and not attisdropped", (materialization,))}
            conditions, params = [], []
            for c in sorted(cols & DEVICE_COLUMNS):
                conditions.append(f'"{c}" = any(%s)')
                params.append(devices)
            for c in sorted(cols & USER_COLUMNS):
                conditions.append(f'"{c}" = %s')
                params.append(user_id)
            if conditions:
                n = conn.execute(f"delete from {materialization} where " + " or ".join(conditions), params).rowcount
                if n:
                    counts[view] = n
            if oldest_source_chunk is None:
                continue
            start = oldest_source_chunk
            if settings.retention_stage_days:  # nor before the stage retention horizon
                horizon = conn.execute("select now() - make_interval(days => %s)",
                                       (settings.retention_stage_days,)).fetchone()[0]
                start = max(start, horizon)
            conn.execute("call refresh_continuous_aggregate(%s::regclass, %s, null)", (view, start))
    return counts


# ------------------------------------------------------------------ files
def _erase_files(settings: Settings, devices: list[str], patterns: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    # the extract's local folder: a package a killed run left behind may hold the documents (a
    # completed load leaves none: dlt_pipelines deletes them); re-reading from the committed
    # change-stream tokens restores anything else it held
    dlt_dir = settings.local_dir / "dlt"
    removed = 0
    for pending in (*dlt_dir.glob("*/load/new/*"), *dlt_dir.glob("*/load/normalized/*"),
                    *dlt_dir.glob("*/load/loaded/*"), *dlt_dir.glob("*/normalize/extracted/*"),
                    *dlt_dir.glob("*/import_files/*")):
        shutil.rmtree(pending, ignore_errors=True)
        removed += 1
    if removed:
        counts["files.dlt_packages"] = removed
    # CSV exports (seed 000): rows of the devices
    export_dir = Path(settings.export_dir) if settings.export_dir else settings.local_dir / "exports"
    compiled = [re.compile(p) for p in patterns]
    rows_removed = 0
    for path in export_dir.rglob("*.csv") if export_dir.is_dir() else ():
        text = path.read_text(errors="replace")
        if not any(p.search(text) for p in compiled):
            continue
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        kept = [r for r in rows if not any(p.search(cell) for cell in r for p in compiled)]
        rows_removed += len(rows) - len(kept)
        tmp = path.with_suffix(".csv.erasing")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(kept)
        tmp.replace(path)
    if rows_removed:
        counts["files.exports"] = rows_removed
    return counts


# ------------------------------------------------------------------ the command
def erase_user(user_id: str, settings: Settings | None = None, progress: bool = True) -> dict:
    """Remove ``user_id`` and their devices' data from every place the platform keeps it (see the
    module docstring), holding the extract lock and the models' locks.

    Returns ``{"user_key", "devices", "deleted": {place: rows}, "seconds"}`` and records the same in
    ``ops.erasures`` (the keyed hash, never the id itself). Uses the superuser role (an admin command).
    """
    s = settings or get_settings()
    started = time.perf_counter()
    user_key = keyed_hash(user_id, s)
    with locks.extract_lock("superuser", settings=s):
        client = mongo_client(s)
        try:
            db = mongo_db(client, s)
            found_devices, found_emails = _user_devices(user_id, s, db)
            devices, emails = sorted(found_devices), sorted(found_emails)
            if progress:
                log.info("erasing user %s… with %d device(s)", user_key[:12], len(devices))
            with pg_connect("superuser", settings=s) as conn:
                _write_tombstones(conn, user_id, devices, s)
            counts = _erase_mongo(db, user_id, devices, emails)
        finally:
            client.close()
        with pg_connect("superuser", settings=s) as conn:  # one transaction: every table or none
            # TimescaleDB: deleting from compressed chunks decompresses the user's segments; no cap
            # on how many for this one transaction (a placeholder setting without the extension)
            conn.execute("select set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true)")
            counts.update(_erase_warehouse(conn, user_id, devices, emails))
        counts.update(_erase_from_continuous_aggregates(s, user_id, devices))
        counts.update(_erase_files(s, devices, _identifier_pattern([user_id, *devices, *emails])))
        with pg_connect("superuser", settings=s) as conn:
            conn.execute("insert into ops.erasures (user_key, erased_at, device_count, deleted_rows) "
                         "values (%s, %s, %s, %s)", (user_key, datetime.now(UTC), len(devices), json.dumps(counts)))
    seconds = round(time.perf_counter() - started, 2)
    if progress:
        for place, n in sorted(counts.items()):
            log.info("  %-40s %8d", place, n)
    return {"user_key": user_key, "devices": devices, "deleted": counts, "seconds": seconds}
