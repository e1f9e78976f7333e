"""Writing documents to MongoDB: chunked unordered ``insert_many``, ``_ingested_at`` stamped at
write time, and exactly-once by deterministic ``_id``.

A duplicate-key error is compared with what is stored: the same content (a retry, a resumed
backfill) counts as already written. Different content under an existing ``_id`` is a change or
a conflict: a registry document (a user's consent, a device's owner) is replaced, as the
application that owns it would update it; a bucket that gained samples (the stored items are the
first items of the new version, nothing else differs) is replaced too; anything else (a reading
sent again with other values, a bucket whose items changed) is refused and recorded in
``rejected_writes`` with the document. Nothing disappears silently: the counts say what was
inserted, updated, already present and refused.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import bson
from pymongo import ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
REJECTED_COLLECTION = "rejected_writes"
REGISTRY_COLLECTIONS = ("users", "devices")
BUCKET_COLLECTIONS = ("heart_rates", "steps", "sleeps")
# how far each backfill got (generators.backfill); not a device collection, the extract never reads it
PROGRESS_COLLECTION = "generator_backfill_progress"


@dataclass
class WriteStats:
    inserted: int = 0
    updated: int = 0
    already_present: int = 0
    rejected: int = 0
    kept: int = 0  # registry documents already stored with other content (see MongoWriter.register)
    by_collection: dict[str, int] = field(default_factory=dict)

    def add(self, other: WriteStats) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.already_present += other.already_present
        self.rejected += other.rejected
        self.kept += other.kept
        for name, n in other.by_collection.items():
            self.by_collection[name] = self.by_collection.get(name, 0) + n

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.already_present + self.rejected


def utc_now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # BSON keeps milliseconds


def _content(doc: dict) -> bytes:
    return bson.encode({k: v for k, v in doc.items() if k != "_ingested_at"})


def _gained_samples(stored: dict, doc: dict) -> bool:
    """``doc`` is ``stored`` with more samples appended to its bucket (the device sent more)."""
    old, new = stored.get("metrics"), doc.get("metrics")
    if type(old) is not list or type(new) is not list or len(new) <= len(old):
        return False
    same = {k: v for k, v in stored.items() if k not in ("metrics", "_ingested_at")}
    if same != {k: v for k, v in doc.items() if k not in ("metrics", "_ingested_at")}:
        return False
    return bson.encode({"m": old}) == bson.encode({"m": new[:len(old)]})


class MongoWriter:
    """Writes generated documents into ``db`` (a pymongo Database)."""

    def __init__(self, db, chunk_size: int = 2000):
        self.db = db
        self.chunk_size = chunk_size

    def write(self, collection: str, docs: list[dict]) -> WriteStats:
        """Insert ``docs`` (not modified); safe to call again with the same documents."""
        stats = WriteStats()
        for lo in range(0, len(docs), self.chunk_size):
            stats.add(self._write_chunk(collection, docs[lo:lo + self.chunk_size]))
        return stats

    def _write_chunk(self, collection: str, chunk: list[dict]) -> WriteStats:
        now = utc_now_ms()
        stamped = [{**doc, "_ingested_at": now} for doc in chunk]
        stats = WriteStats(by_collection={collection: len(chunk)})
        try:
            self.db[collection].insert_many(stamped, ordered=False)
            stats.inserted = len(chunk)
            return stats
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if others:
                raise
            stats.inserted = exc.details.get("nInserted", len(chunk) - len(errors))
            duplicates = [chunk[e["index"]] for e in errors]
        stored = self._fetch(collection, [d["_id"] for d in duplicates])
        refused = []
        changed = []
        for doc in duplicates:
            existing = stored.get(doc["_id"])
            if existing is not None and _content(existing) == _content(doc):
                stats.already_present += 1
            elif existing is not None and (collection in REGISTRY_COLLECTIONS or (
                    collection in BUCKET_COLLECTIONS and _gained_samples(existing, doc))):
                changed.append({**doc, "_ingested_at": now})
            else:
                refused.append(doc)
        if changed:
            result = self.db[collection].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in changed],
                                                    ordered=False)
            stats.updated = result.modified_count + result.upserted_count
            stats.already_present += len(changed) - stats.updated
        if refused:
            self._record_refusals(collection, refused, now)
            stats.rejected = len(refused)
        return stats

    def register(self, collection: str, docs: list[dict]) -> WriteStats:
        """Registry documents (``users``, ``devices``) as a simulator registers its fleet: the absent
        ones are inserted, the stored ones are left as they are, even where they differ: another
        application (a consent withdrawn, a device re-assigned) may have changed them since, and a
        restarted simulator must not undo that. The differing ones are counted in ``kept``."""
        stored = self._fetch(collection, [d["_id"] for d in docs])
        absent = [d for d in docs if d["_id"] not in stored]
        stats = self.write(collection, absent) if absent else WriteStats(by_collection={collection: 0})
        present = [d for d in docs if d["_id"] in stored]
        stats.already_present += len(present)
        stats.kept += sum(1 for d in present if _content(stored[d["_id"]]) != _content(d))
        stats.by_collection[collection] = stats.by_collection.get(collection, 0) + len(present)
        if stats.kept:
            log.info("%d %s documents differ from the stored ones (changed since by another writer): kept",
                     stats.kept, collection)
        return stats

    def _fetch(self, collection: str, ids: list) -> dict:
        """Stored documents by ``_id``, asked for in batches: a long ``$in`` list is slow on some
        servers (SecantusDB: 3 s for 2,000 ids, 0.03 s for 200)."""
        stored = {}
        for lo in range(0, len(ids), 100):
            stored.update((d["_id"], d) for d in self.db[collection].find({"_id": {"$in": ids[lo:lo + 100]}}))
        return stored

    def _record_refusals(self, collection: str, refused: list[dict], now: datetime) -> None:
        records = []
        for doc in refused:
            digest = hashlib.blake2b(_content(doc), digest_size=8).hexdigest()
            record = {"_id": f"{collection}:{doc['_id']}:{digest}", "collection": collection,
                      "document_id": doc["_id"], "reason": "duplicate _id with different content",
                      "document": doc, "rejected_at": now, "_ingested_at": now}
            if "_test_bad_kind" in doc:  # carried over so tests can follow the bad document
                record["_test_bad_kind"] = doc["_test_bad_kind"]
            records.append(record)
        try:
            self.db[REJECTED_COLLECTION].insert_many(records, ordered=False)
        except BulkWriteError as exc:  # the same refusal recorded by an earlier (retried) write
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
        log.debug("%d refused writes to %s recorded in %s", len(records), collection, REJECTED_COLLECTION)

    def last_written_ids(self, collection: str, limit: int = 50) -> list:
        """``_id`` of documents of the newest ``_ingested_at`` (indexed, as the extract reads it):
        any ``limit`` of the last chunk written."""
        self.db[collection].create_index("_ingested_at")
        return [d["_id"] for d in self.db[collection].find({}, {"_id": 1}).sort("_ingested_at", -1).limit(limit)]

    def backfill_progress(self, run: str) -> dict[tuple[str, str], int]:
        """(collection, device) -> the last window day a backfill ``run`` stored whole."""
        return {(d["collection"], d["device"]): d["day"]
                for d in self.db[PROGRESS_COLLECTION].find({"run": run}, {"collection": 1, "device": 1, "day": 1})}

    def save_backfill_progress(self, run: str, collection: str, stored: list[tuple[str, int]]) -> None:
        """Record that ``run`` stored these (device, day) windows of ``collection`` whole (each
        device's windows come in day order, so the last one per device says it all)."""
        newest = dict(stored)
        self.db[PROGRESS_COLLECTION].bulk_write([
            UpdateOne({"_id": f"{run}|{collection}|{device}"},
                      {"$set": {"run": run, "collection": collection, "device": device, "day": day,
                                "updated_at": utc_now_ms()}}, upsert=True)
            for device, day in newest.items()], ordered=False)
