"""Change capture: late-visible inserts, updates without the writer's cooperation, deletes at the
source, ids of any type, values PostgreSQL cannot store, resumption, bounded retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factories as f
import pytest
from bson import ObjectId

from dlt_pipelines import load_raw


def seed(db):
    now = f.ms(datetime.now(UTC))
    db.devices.insert_many([f.device("aq-1", ingested_at=now), f.device("w-1", kind="watch", owner="u-1", ingested_at=now)])
    db.users.insert_one(f.user("u-1", ["w-1"], ingested_at=now))
    db.air_quality.insert_many([f.air_quality("aq-1", f.BASE + timedelta(minutes=i), now, i) for i in range(10)])
    load_raw()


def capture_state(raw):
    return {c: (t, n) for c, t, n in raw("select collection, resume_token, failures from raw._capture_state")}


@pytest.mark.parametrize("behind", [timedelta(seconds=30), timedelta(minutes=4), timedelta(hours=6)])
def test_a_document_that_becomes_visible_late_is_loaded_exactly_once(fresh, raw, behind):
    """The writer stamped ``_ingested_at`` before the last committed load ended (a slow
    insert_many chunk, a writer whose clock is behind): capture does not depend on the stamp."""
    seed(fresh)
    last = raw("select max(_ingested_at) from raw.air_quality")[0][0]
    late = f.air_quality("aq-1", f.BASE - timedelta(days=1), ingested_at=f.ms(last - behind))
    fresh.air_quality.insert_one(late)
    assert load_raw()["loaded"]["air_quality"] == 1
    assert load_raw()["documents"] == 0  # and never again
    assert raw("select count(*) from raw.air_quality where _id = %s", (late["_id"],)) == [(1,)]
    captured = raw("select _ingested_at from raw.air_quality where _id = %s", (late["_id"],))[0][0]
    assert captured >= last  # the capture time, not the writer's stamp


@pytest.mark.parametrize("stamp", ["missing", "a string", "far future"])
def test_the_writers_stamp_is_not_needed(fresh, raw, stamp):
    seed(fresh)
    doc = f.air_quality("aq-1", f.BASE - timedelta(hours=1))
    if stamp == "missing":
        doc.pop("_ingested_at")
    elif stamp == "a string":
        doc["_ingested_at"] = "2026-11-01T00:00:00Z"
    else:
        doc["_ingested_at"] = datetime(2300, 1, 1, tzinfo=UTC)
    fresh.air_quality.insert_one(doc)
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert load_raw()["loaded"]["air_quality"] == 1
    assert raw("select _ingested_at > %s, _ingested_at < now() + interval '1 minute' from raw.air_quality"
               " where _id = %s", (before, doc["_id"])) == [(True, True)]


def test_plain_updates_reach_raw_without_touching_the_stamp(fresh, raw):
    seed(fresh)
    fresh.users.update_one({"_id": "u-1"}, {"$set": {"share_with_research_asof": None}})
    fresh.devices.update_one({"_id": "w-1"}, {"$set": {"owner_user_id": "u-2"}})
    fresh.air_quality.update_one({"_id": f.air_quality("aq-1", f.BASE)["_id"]}, {"$set": {"readings.0": 77.0}})
    result = load_raw()
    assert result["loaded"]["users"] == 1 and result["loaded"]["devices"] == 1
    assert raw("select share_with_research_asof from raw.users where _id = 'u-1'") == [(None,)]
    assert raw("select owner_user_id from raw.devices where _id = 'w-1'") == [("u-2",)]
    assert raw("select iaq from raw.air_quality where _id = %s", (f.air_quality("aq-1", f.BASE)["_id"],)) == [(77.0,)]
    assert raw("select count(*) from raw.users") == [(1,)]


def test_a_bucket_that_gains_or_loses_samples_keeps_exactly_its_current_items(fresh, raw):
    seed(fresh)
    bucket = f.heart_rate("w-1", f.BASE, samples=3)
    fresh.heart_rates.insert_one(bucket)
    load_raw()
    more = [{"ts": f.BASE + timedelta(minutes=5 * k), "bpm": 60 + k, "confidence": 2} for k in range(3, 6)]
    fresh.heart_rates.update_one({"_id": bucket["_id"]}, {"$push": {"metrics": {"$each": more}}})
    load_raw()
    assert raw("select count(*), max(bpm) from raw.heart_rates__metrics where _parent_id = %s",
               (bucket["_id"],)) == [(6, 65.0)]
    assert raw("select sample_count from raw.heart_rates where _id = %s", (bucket["_id"],)) == [(6,)]
    fresh.heart_rates.update_one({"_id": bucket["_id"]}, {"$pop": {"metrics": 1}})
    load_raw()
    assert raw("select count(*), max(idx) from raw.heart_rates__metrics where _parent_id = %s",
               (bucket["_id"],)) == [(5, 4)]


def test_a_delete_at_the_source_keeps_the_warehouse_history(fresh, raw):
    seed(fresh)
    doc_id = f.air_quality("aq-1", f.BASE)["_id"]
    fresh.air_quality.delete_one({"_id": doc_id})
    fresh.air_quality.delete_many({"devid": "aq-1", "ts": {"$gt": (f.BASE + timedelta(minutes=7)).isoformat()}})
    result = load_raw()
    assert result["deletes"] == 3
    assert raw("select count(*) from raw.air_quality") == [(10,)]
    assert raw("select count(*) from raw.source_deletes where collection = 'air_quality'") == [(3,)]
    assert raw("select deleted_at is not null from raw.source_deletes where source_id = %s", (doc_id,)) == [(True,)]


def test_a_document_updated_into_a_bad_one_leaves_raw_for_the_quarantine_and_back(fresh, raw):
    """The source's current state decides: an outdated good version must not stay current (a
    user's consent), and a fixed document leaves the quarantine."""
    seed(fresh)
    fresh.users.update_one({"_id": "u-1"}, {"$set": {"age": "thirty"}})
    load_raw()
    assert raw("select count(*) from raw.users") == [(0,)]
    assert raw("select source_id, reason like 'number_as_string%%' or reason like 'wrong_type%%'"
               " from raw.quarantine where collection = 'users'") == [("u-1", True)]
    fresh.users.update_one({"_id": "u-1"}, {"$set": {"age": 34}})  # as its date of birth says
    load_raw()
    assert raw("select age from raw.users") == [(34,)]
    assert raw("select count(*) from raw.quarantine where collection = 'users'") == [(0,)]


def test_ids_of_every_type_load_under_keys_that_cannot_collide(fresh, raw):
    seed(fresh)
    oid = ObjectId()
    base = f.air_quality("aq-1", f.BASE + timedelta(hours=5))
    docs = [{**base, "_id": oid}, {**base, "_id": 900000}, {**base, "_id": "900000"},
            {**base, "_id": 900000.5}, {**base, "_id": {"site": "A", "n": 1}}, {**base, "_id": '{"$oid": "x"}'}]
    fresh.air_quality.insert_many(docs)
    # bad documents whose ids differ only in type are quarantined side by side
    bad = {**base, "readings": "none"}
    fresh.air_quality.insert_many([{**bad, "_id": 5}, {**bad, "_id": "5"}, {**bad, "_id": ObjectId()}])
    result = load_raw()
    assert result["loaded"]["air_quality"] == len(docs)
    keys = {k for (k,) in raw("select _id from raw.air_quality where ts = %s", (base["ts"],))}
    assert keys == {f'{{"$oid": "{oid}"}}', '{"$numberInt": "900000"}', "900000", '{"$numberDouble": "900000.5"}',
                    '{"site": "A", "n": {"$numberInt": "1"}}', '"{\\"$oid\\": \\"x\\"}"'}
    assert raw("select count(distinct source_id) from raw.quarantine where collection = 'air_quality'") == [(3,)]
    assert load_raw()["documents"] == 0


@pytest.mark.parametrize(("collection", "mutate"), [
    ("air_quality", lambda d: d.__setitem__("devid", "aq-1\x00")),
    ("users", lambda d: d.__setitem__("email", "u-9\x00@example.org")),
    ("devices", lambda d: d["history"][0].__setitem__("notes", "fixed\x00 the fan")),
    ("air_quality", lambda d: d.__setitem__("_id", "aq:\x00:1")),
])
def test_a_nul_character_is_quarantined_and_later_documents_still_load(fresh, raw, collection, mutate):
    seed(fresh)
    doc = {"air_quality": f.air_quality("aq-1", f.BASE + timedelta(days=2)), "users": f.user("u-9", []),
           "devices": f.device("aq-9")}[collection]
    mutate(doc)
    fresh[collection].insert_one(doc)
    result = load_raw()
    assert result["reasons"] == {"unstorable_text": 1}
    (reason, document), = raw("select reason, document::text from raw.quarantine")
    assert reason.startswith("unstorable_text:") and "NUL" in reason
    assert "\\\\u0000" in document  # the original, with the NUL written out
    fresh.air_quality.insert_one(f.air_quality("aq-1", f.BASE + timedelta(days=3)))
    assert load_raw()["loaded"]["air_quality"] == 1


def test_an_id_too_long_to_index_is_quarantined_under_its_digest(fresh, raw):
    seed(fresh)
    base = f.air_quality("aq-1", f.BASE + timedelta(days=4))
    fresh.air_quality.insert_many([{**base, "_id": "x" * 10_000}, f.air_quality("aq-1", f.BASE + timedelta(days=5))])
    result = load_raw()
    assert result["reasons"] == {"id_too_long": 1} and result["loaded"]["air_quality"] == 1
    assert raw("select source_id like '{\"$sha256\": %%' from raw.quarantine") == [(True,)]


def test_a_token_the_server_cannot_resume_gives_a_snapshot(fresh, raw):
    seed(fresh)
    with __import__("iot_core.connections", fromlist=["pg_connect"]).pg_connect("loader") as conn:
        conn.execute("""update raw._capture_state set resume_token = '{"_data": "00"}' where collection = 'air_quality'""")
    fresh.air_quality.update_one({"_id": f.air_quality("aq-1", f.BASE)["_id"]}, {"$set": {"readings.0": 1.0}})
    result = load_raw()
    assert result["snapshots"] == ["air_quality"] and result["loaded"]["air_quality"] == 10
    assert raw("select iaq from raw.air_quality where _id = %s", (f.air_quality("aq-1", f.BASE)["_id"],)) == [(1.0,)]
    assert capture_state(raw)["air_quality"][0]["_data"] != "00"
    assert load_raw()["documents"] == 0


def test_a_load_the_warehouse_keeps_refusing_is_quarantined_after_three_tries(fresh, raw, monkeypatch):
    """A hole in the contract (simulated: a flattening that lets a NUL through to the load) must not
    stall capture: the failed loads are counted, then the documents go to the quarantine with the
    error, and the extract moves on."""
    from bson.int64 import Int64

    from dlt_pipelines import contract
    from dlt_pipelines.pipeline import MAX_LOAD_ATTEMPTS

    seed(fresh)
    poison = f.air_quality("aq-1", f.BASE + timedelta(days=6))
    poison["readings"][0] = Int64(50)  # valid, but not the fast path's layout
    fresh.air_quality.insert_one(poison)
    fresh.users.insert_one(f.user("u-2", []))
    flatten = contract.flatten

    def leaky_flatten(collection, doc, ctx):
        flat = flatten(collection, doc, ctx)
        if doc.get("_id") == poison["_id"]:
            flat.row["devid"] = "aq-1\x00"
        return flat

    monkeypatch.setattr(contract, "flatten", leaky_flatten)
    for attempt in range(1, MAX_LOAD_ATTEMPTS + 1):
        with pytest.raises(Exception):  # noqa: B017 - whatever dlt wraps the refusal in
            load_raw()
        assert capture_state(raw)["air_quality"][1] == attempt
    result = load_raw()
    assert result["reasons"] == {"load_failed": 1}
    ((source_id, reason),) = raw("select source_id, reason from raw.quarantine")
    assert source_id == poison["_id"] and reason.startswith("load_failed: 3 loads") and "SQLSTATE 22021" in reason
    assert raw("select count(*) from raw.users") == [(2,)]  # the other collections were not held back
    assert capture_state(raw)["air_quality"][1] == 0
    assert load_raw()["documents"] == 0


@pytest.mark.slow
def test_retention_by_a_ttl_index_at_the_source_never_deletes_warehouse_history(fresh, raw):
    """A TTL index on readings (the server's monitor sweeps every 60 s) deletes old documents at the
    source; raw keeps them and records the deletions."""
    import time

    seed(fresh)
    old = f.ms(datetime.now(UTC) - timedelta(days=2))
    fresh.air_quality.insert_many([f.air_quality("aq-1", f.BASE + timedelta(days=9, minutes=i), ingested_at=old)
                                   for i in range(5)])
    fresh.air_quality.create_index("_ingested_at", expireAfterSeconds=86_400)
    load_raw()
    deadline = time.monotonic() + 150
    while fresh.air_quality.count_documents({}) > 10 and time.monotonic() < deadline:
        time.sleep(2)
    assert fresh.air_quality.count_documents({}) == 10, "the TTL monitor did not run"
    assert load_raw()["deletes"] == 5
    assert raw("select count(*) from raw.air_quality") == [(15,)]
    assert raw("select count(*) from raw.source_deletes") == [(5,)]
