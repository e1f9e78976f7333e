"""Backfill into a real MongoDB-protocol server: exactly once, idempotent, resumable, refusals recorded."""

from __future__ import annotations

import time
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
    catch_up,
    documents,
    key_epoch,
    stream,
)
from generators.catalog import SEND_DELAY_S, epoch_to_datetime
from generators.common import epoch_seconds
from generators.writer import PROGRESS_COLLECTION

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


class Interrupted(Exception):
    """The backfill process dies (a kill, a lost connection)."""


class DyingWriter(MongoWriter):
    """A real writer whose process dies after ``survive`` documents, in the middle of a chunk: of
    the chunk in flight (unordered insert_many) only every other document reached the server."""

    def __init__(self, db, survive: int, **kwargs):
        super().__init__(db, **kwargs)
        self.left = survive

    def write(self, collection, docs):
        if len(docs) <= self.left:
            self.left -= len(docs)
            return super().write(collection, docs)
        super().write(collection, docs[:self.left] + docs[self.left::2])
        raise Interrupted


DAYS_FROM, DAYS_TO = START + timedelta(days=1), START + timedelta(days=4, hours=14)


def stored_ids(db):
    return {c: {d["_id"] for d in db[c].find({}, {"_id": 1})} for c in MEASUREMENTS}


def test_resume_fills_what_an_interrupted_run_left_out_and_skips_what_it_stored(clean_mongo, small_fleet):
    db = clean_mongo
    backfill(MongoWriter(db, chunk_size=500), small_fleet, DAYS_FROM, DAYS_TO, bad_rate=BAD_RATE, progress=False)
    whole = stored_ids(db)
    total = sum(len(ids) for ids in whole.values())
    for name in (*MEASUREMENTS, PROGRESS_COLLECTION):
        db.drop_collection(name)

    with pytest.raises(Interrupted):  # dies in the second collection, leaving holes in a chunk
        backfill(DyingWriter(db, survive=len(whole["air_quality"]) + 777, chunk_size=500), small_fleet, DAYS_FROM,
                 DAYS_TO, bad_rate=BAD_RATE, progress=False)
    left_by_the_dead_run = sum(len(ids) for ids in stored_ids(db).values())
    assert 0 < left_by_the_dead_run < total
    stats = backfill(MongoWriter(db, chunk_size=500), small_fleet, DAYS_FROM, DAYS_TO, bad_rate=BAD_RATE,
                     progress=False)
    assert stored_ids(db) == whole
    assert stats.inserted == total - left_by_the_dead_run
    # what the dead run stored whole (its recorded windows) was skipped, not written again
    assert stats.already_present < left_by_the_dead_run / 2


def test_documents_of_a_live_stream_do_not_make_a_backfill_skip_the_history(clean_mongo, small_fleet):
    db = clean_mongo
    backfill(MongoWriter(db, chunk_size=500), small_fleet, DAYS_FROM, DAYS_TO, bad_rate=BAD_RATE, progress=False)
    whole = stored_ids(db)
    for name in (*MEASUREMENTS, PROGRESS_COLLECTION):
        db.drop_collection(name)
    # a stream started first: the newest hour of every device is already there
    writer = MongoWriter(db, chunk_size=500)
    for collection in MEASUREMENTS:
        writer.write(collection, documents(small_fleet, collection, DAYS_TO - timedelta(hours=1),
                                           DAYS_TO - timedelta(seconds=SEND_DELAY_S[collection]), bad_rate=BAD_RATE))
    backfill(writer, small_fleet, DAYS_FROM, DAYS_TO, bad_rate=BAD_RATE, progress=False)
    assert stored_ids(db) == whole


def test_a_longer_backfill_after_a_shorter_one_writes_the_older_days(clean_mongo, small_fleet):
    db = clean_mongo
    writer = MongoWriter(db, chunk_size=500)
    backfill(writer, small_fleet, DAYS_FROM, DAYS_TO, bad_rate=BAD_RATE, progress=False)
    whole = stored_ids(db)
    for name in (*MEASUREMENTS, PROGRESS_COLLECTION):
        db.drop_collection(name)
    backfill(writer, small_fleet, DAYS_FROM + timedelta(days=2), DAYS_TO, bad_rate=BAD_RATE, progress=False)
    backfill(writer, small_fleet, DAYS_FROM, DAYS_TO, bad_rate=BAD_RATE, progress=False)
    assert stored_ids(db) == whole


def ids_sent(fleet, start, end):
    """_ids of what the devices sent in [start, end] (send time: a reading at its time, a bucket when
    it closes)."""
    out = {}
    for c in MEASUREMENTS:
        delay = timedelta(seconds=SEND_DELAY_S[c])
        out[c] = {d["_id"] for d in documents(fleet, c, start - delay, end - delay + timedelta(seconds=1),
                                              bad_rate=BAD_RATE)}
    return out


def test_a_stream_restarted_after_a_stop_first_catches_up_so_the_readings_go_on_unbroken(clean_mongo, small_fleet):
    db = clean_mongo
    writer = MongoWriter(db, chunk_size=500)
    assert catch_up(writer, small_fleet, DAYS_FROM, timedelta(hours=24)) is None  # nothing ever written
    # the earlier stream ran 6 hours and stopped at 15:55:20, with the 12:00-16:00 heart-rate bucket
    # still open (it is sent at 16:00, while nothing runs); its last minute is its last write
    stopped = DAYS_FROM + timedelta(days=1, hours=15, minutes=55, seconds=20)
    before_last_minute = ids_sent(small_fleet, stopped - timedelta(hours=6), stopped - timedelta(minutes=1))
    for collection, ids in ids_sent(small_fleet, stopped - timedelta(hours=6), stopped).items():
        docs = [d for d in documents(small_fleet, collection, stopped - timedelta(days=1), stopped, bad_rate=BAD_RATE)
                if d["_id"] in ids]
        writer.write(collection, [d for d in docs if d["_id"] in before_last_minute[collection]])
    time.sleep(0.05)
    for collection, ids in ids_sent(small_fleet, stopped - timedelta(hours=6), stopped).items():
        docs = [d for d in documents(small_fleet, collection, stopped - timedelta(days=1), stopped, bad_rate=BAD_RATE)
                if d["_id"] in ids and d["_id"] not in before_last_minute[collection]]
        writer.write(collection, docs)
    # restarted 9 hours later, a quarter second after a reading was sent: the catch-up sends it,
    # the stream what is due after it
    reading = min(key_epoch(d) for d in documents(small_fleet, "air_quality", stopped + timedelta(hours=9),
                                                   stopped + timedelta(hours=10)))
    restart = epoch_to_datetime(reading) + timedelta(milliseconds=250)
    caught = catch_up(writer, small_fleet, restart, timedelta(hours=24), progress=False, bad_rate=BAD_RATE)
    assert caught.inserted > 0
    resumed_until = restart + timedelta(minutes=20)
    stream(writer, small_fleet, sim_start=restart, sim_end=resumed_until, speedup=1200, bad_rate=BAD_RATE,
           tick_s=0.05)
    stored = stored_ids(db)
    # no hole: everything sent from the first stream's start on; and nothing that was not sent
    # (the catch-up's margin for buckets open at the stop may add older ones, all genuine)
    expected = ids_sent(small_fleet, stopped - timedelta(hours=6), resumed_until)
    for collection in MEASUREMENTS:
        assert expected[collection] <= stored[collection], collection
        extra = stored[collection] - expected[collection]
        assert extra <= ids_sent(small_fleet, stopped - timedelta(days=1), resumed_until)[collection], collection


def test_a_catch_up_reaches_back_no_further_than_its_limit(clean_mongo, small_fleet):
    db = clean_mongo
    writer = MongoWriter(db, chunk_size=500)
    stopped = DAYS_FROM + timedelta(hours=12)
    writer.write("air_quality", documents(small_fleet, "air_quality", stopped - timedelta(hours=1), stopped))
    restart = stopped + timedelta(days=2)
    catch_up(writer, small_fleet, restart, timedelta(hours=6), progress=False)
    keys = sorted(key_epoch(d) for d in db.air_quality.find({}, {"_id": 1}))
    later = [k for k in keys if k >= epoch_seconds(stopped)]
    assert later and min(later) >= epoch_seconds(restart - timedelta(hours=6))
    assert max(keys) <= epoch_seconds(restart)


def test_changes_are_written_as_updates_and_conflicts_are_refused(clean_mongo, small_fleet):
    """A changed registry document replaces the stored one; a bucket that gained samples replaces
    its shorter version; a bucket whose samples changed and a reading sent again with other values
    are refused into rejected_writes. The counts say which is which."""
    from generators import device_documents, user_documents

    db = clean_mongo
    writer = MongoWriter(db)
    user = user_documents(small_fleet)[0]
    writer.write("users", [user])
    withdrawn = {**user, "share_with_research_asof": None, "height": user["height"] + 1}
    stats = writer.write("users", [withdrawn])
    assert (stats.updated, stats.rejected) == (1, 0)
    assert db.users.find_one({"_id": user["_id"]})["share_with_research_asof"] is None

    bucket = documents(small_fleet, "heart_rates", FROM, TO, bad_rate=0)[0]
    shorter = {**bucket, "metrics": bucket["metrics"][:-2]}
    writer.write("heart_rates", [shorter])
    assert writer.write("heart_rates", [bucket]).updated == 1  # the device sent two more samples
    assert len(db.heart_rates.find_one({"_id": bucket["_id"]})["metrics"]) == len(bucket["metrics"])
    changed = {**bucket, "metrics": [{**bucket["metrics"][0], "bpm": 199}, *bucket["metrics"][1:]]}
    assert writer.write("heart_rates", [changed]).rejected == 1

    reading = documents(small_fleet, "air_quality", FROM, TO, bad_rate=0)[0]
    writer.write("air_quality", [reading])
    other = {**reading, "readings": [v + 1 for v in reading["readings"]]}
    assert writer.write("air_quality", [other]).rejected == 1
    assert db.air_quality.find_one({"_id": reading["_id"]})["readings"] == reading["readings"]
    assert db[REJECTED_COLLECTION].count_documents({}) == 2

    # a simulator registering its fleet again does not undo another application's change
    devices = device_documents(small_fleet)
    writer.register("devices", devices)
    db.devices.update_one({"_id": devices[0]["_id"]}, {"$set": {"owner_user_id": None}})
    again = writer.register("devices", devices)
    assert (again.inserted, again.updated, again.already_present, again.kept) == (0, 0, len(devices), 1)
    assert db.devices.find_one({"_id": devices[0]["_id"]})["owner_user_id"] is None
