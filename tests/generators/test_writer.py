"""Backfill into a real MongoDB-protocol server: exactly once, idempotent, resumable, refusals recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bson
import pytest
from gen_support import START

from generators import (
    MARKER,
    MEASUREMENTS,
    REJECTED_COLLECTION,
    MongoWriter,
    backfill,
    build_fleet,
    documents,
)
from generators.catalog import SEND_DELAY_S

FROM, TO = START + timedelta(days=1), START + timedelta(days=1, hours=14)
BAD_RATE = 0.08


@pytest.fixture(scope="module")
def small_fleet():
    return build_fleet(users=2, sensors=2, seed=21, anchor=START)


def expected(fleet, collection):
    """What a backfill of [FROM, TO) must store: documents sent by TO (buckets once closed)."""
    docs = documents(fleet, collection, FROM, TO - timedelta(seconds=SEND_DELAY_S[collection]), bad_rate=BAD_RATE)
    kept, refused = {}, []
    for d in docs:  # the first document with an _id is stored, a later one with the same _id refused
        if d["_id"] in kept:
            refused.append(d)
        else:
            kept[d["_id"]] = d
    return kept, refused


def _without_ingested(doc):
    return {k: v for k, v in doc.items() if k != "_ingested_at"}


def test_backfill_stores_everything_once_and_records_refused_duplicates(clean_mongo, small_fleet):
    db = clean_mongo
    before = datetime.now(UTC) - timedelta(seconds=1)
    stats = backfill(MongoWriter(db, chunk_size=500), small_fleet, FROM, TO, bad_rate=BAD_RATE, progress=False)
    all_refused = []
    for collection in MEASUREMENTS:
        kept, refused = expected(small_fleet, collection)
        stored = {d["_id"]: d for d in db[collection].find()}
        assert set(stored) == set(kept), collection
        for doc_id, doc in stored.items():
            assert doc["_ingested_at"] >= before
            assert _without_ingested(doc).keys() == kept[doc_id].keys()
        all_refused += refused
    assert db.users.count_documents({}) == 2 and db.devices.count_documents({}) == 6
    rejected = list(db[REJECTED_COLLECTION].find())
    assert len(rejected) == len(all_refused) == stats.rejected > 0
    assert {r["document_id"] for r in rejected} == {d["_id"] for d in all_refused}
    assert all(r["document"][MARKER] == "duplicate_id" and r["reason"] for r in rejected)
    # every bad document is findable: stored (with its defect) or recorded as refused
    bad_stored = sum(db[c].count_documents({MARKER: {"$exists": True}}) for c in MEASUREMENTS)
    bad_generated = sum(1 for c in MEASUREMENTS
                        for d in documents(small_fleet, c, FROM, TO - timedelta(seconds=SEND_DELAY_S[c]),
                                           bad_rate=BAD_RATE) if MARKER in d)
    assert bad_stored + len(rejected) == bad_generated


def test_rerun_changes_nothing(clean_mongo, small_fleet):
    db = clean_mongo
    writer = MongoWriter(db, chunk_size=500)
    backfill(writer, small_fleet, FROM, TO, bad_rate=BAD_RATE, progress=False)
    # compared as BSON bytes: NaN readings are equal to themselves there
    snapshot = {c: {d["_id"]: bson.encode(d) for d in db[c].find()} for c in (*MEASUREMENTS, REJECTED_COLLECTION)}
    stats = backfill(writer, small_fleet, FROM, TO, bad_rate=BAD_RATE, progress=False, resume=False)
    assert stats.inserted == 0 and stats.already_present > 0
    for collection, docs in snapshot.items():
        assert {d["_id"]: bson.encode(d) for d in db[collection].find()} == docs, collection  # _ingested_at too


def test_resume_fills_what_an_interrupted_run_left_out(clean_mongo, small_fleet):
    db = clean_mongo
    writer = MongoWriter(db, chunk_size=500)
    backfill(writer, small_fleet, FROM, TO, bad_rate=BAD_RATE, progress=False)
    full = {c: db[c].count_documents({}) for c in MEASUREMENTS}
    # an interrupted run: the newest hours missing, and holes from an unordered chunk in flight
    cut = (FROM + timedelta(hours=9)).isoformat().replace("+00:00", "Z")
    removed = db.air_quality.delete_many({"ts": {"$gt": cut}, "devid": small_fleet.sensors[0].devid}).deleted_count
    holes = [d["_id"] for d in db.steps.find({}, {"_id": 1}).sort("_id", 1).limit(30)][::3]
    db.steps.delete_many({"_id": {"$in": holes}})
    assert removed > 0
    stats = backfill(writer, small_fleet, FROM, TO, bad_rate=BAD_RATE, progress=False)
    assert stats.inserted == removed + len(holes)
    assert {c: db[c].count_documents({}) for c in MEASUREMENTS} == full
