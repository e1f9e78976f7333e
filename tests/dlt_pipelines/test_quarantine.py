"""Schema contract: every bad kind is quarantined with its reason; the good documents still load."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import factories as f
from pymongo.errors import DuplicateKeyError

from dlt_pipelines import load_raw
from dlt_pipelines.tables import PARENT_SCHEMAS
from iot_core.contract import MEASURE_NAMES

BAD_KINDS = {"missing_field", "wrong_type", "number_as_string", "nan_or_infinity", "out_of_range",
             "readings_wrong_length", "ts_far_future", "ts_before_2000", "unknown_device", "duplicate_id",
             "nested_junk", "empty_document", "unparseable_ts"}


def test_every_bad_kind_is_quarantined_with_its_reason_and_good_documents_load(fresh, raw):
    now = f.ms(datetime.now(UTC))
    fresh.devices.insert_many([f.device("aq-1", ingested_at=now), f.device("w-1", kind="watch", owner="u-1")])
    good = [f.air_quality("aq-1", f.BASE + timedelta(minutes=i), now) for i in range(30)]
    fresh.air_quality.insert_many(good)
    fresh.heart_rates.insert_one(f.heart_rate("w-1", f.BASE, 4, now))
    bad = f.bad_documents("aq-1", "w-1", f.BASE + timedelta(hours=1))
    for collection, doc in bad:
        fresh[collection].insert_one(doc)
    # duplicate_id: MongoDB refuses the second write; the writer logs it in rejected_writes
    duplicate = {**good[0], "readings": [1, 2, 3, 4, 5, 6, 0]}
    try:
        fresh.air_quality.insert_one(duplicate)
        raise AssertionError("MongoDB accepted a duplicate _id")
    except DuplicateKeyError:
        # stamped like the other documents: one written in the same millisecond as the extract's
        # window end belongs to the next run (the window is [start, end)), not to this one
        fresh.rejected_writes.insert_one({**f.rejected_write("air_quality", duplicate), "_ingested_at": now})

    result = load_raw()

    assert raw("select count(*) from raw.air_quality") == [(30,)]
    assert raw("select count(*) from raw.heart_rates") == [(1,)]
    rows = raw("select collection, source_id, reason, document from raw.quarantine")
    assert len(rows) == len(bad) + 1
    by_id = {source_id: (collection, reason, document) for collection, source_id, reason, document in rows}
    expected = [(c, d["_id"], d["_test_bad_kind"]) for c, d in bad]
    for collection, source_id, kind in expected:
        got_collection, reason, document = by_id[source_id]
        assert got_collection == collection
        assert reason.startswith(f"{kind}:"), (source_id, reason)
        assert document["_id"] == source_id  # the original document, as extended JSON
    rejected = [r for r in rows if r[0] == "rejected_writes"]
    assert len(rejected) == 1 and rejected[0][2].startswith("duplicate_id:")
    assert rejected[0][3]["document"]["_id"] == good[0]["_id"]
    seen_kinds = {reason.split(":")[0] for _, _, reason, _ in rows}
    assert seen_kinds == BAD_KINDS
    assert sum(result["quarantined"].values()) == len(bad) + 1
    # NaN survives as extended JSON, so the original can be inspected and replayed
    nan_doc = by_id[f"aq:aq-1:{int((f.BASE + timedelta(hours=1)).timestamp())}:bad-nan_or_infinity"][2]
    assert json.dumps(nan_doc["readings"][0]) == '{"$numberDouble": "NaN"}'

    # quarantine is idempotent too: a re-run adds nothing
    load_raw()
    assert raw("select count(*) from raw.quarantine") == [(len(bad) + 1,)]


def test_air_quality_fast_path_accepts_only_what_the_full_contract_accepts():
    from dlt_pipelines.contract import BadDocument, Context, flatten
    from dlt_pipelines.reader import typical_air_quality

    ctx = Context(now=datetime.now(UTC), known_devices=frozenset({"aq-1", "w-1"}))
    good = f.air_quality("aq-1", f.BASE, i=3)
    fast = typical_air_quality(good, ctx)
    full = flatten("air_quality", good, ctx).row
    assert fast == [good["_id"], "aq-1", good["ts"], full["ts_utc"], None,
                    *(full[m] for m in MEASURE_NAMES), good["_ingested_at"]]
    assert PARENT_SCHEMAS["air_quality"].names == ["_id", "devid", "ts", "ts_utc", "ts_sent", *MEASURE_NAMES,
                                                   "_ingested_at"]
    for collection, doc in f.bad_documents("aq-1", "w-1", f.BASE):
        if collection == "air_quality":
            assert typical_air_quality(doc, ctx) is None, doc["_test_bad_kind"]
            try:
                flatten(collection, doc, ctx)
                raise AssertionError(f"{doc['_test_bad_kind']} passed the contract")
            except BadDocument:
                pass
    # the marker alone never makes a document bad
    marked = {**good, "_test_bad_kind": "missing_field"}
    assert flatten("air_quality", marked, ctx).row == full


def test_bucket_fast_path_gives_the_same_rows_and_reasons_as_the_labelled_checks():
    from dlt_pipelines import contract
    from dlt_pipelines.contract import BadDocument, Context

    ctx = Context(now=datetime.now(UTC), known_devices=frozenset({"w-1"}))
    good = f.heart_rate("w-1", f.BASE, 5)
    rows = contract.flatten("heart_rates", good, ctx)
    slow = contract._flatten_buckets(good, ctx, contract._HR_KEYS, contract._heart_rate_item)
    assert rows.children == slow.children and rows.row == slow.row and rows.row["sample_count"] == 5
    for collection, doc in f.bad_documents("aq-1", "w-1", f.BASE + timedelta(hours=1)):
        if collection == "heart_rates":
            try:
                contract.flatten(collection, doc, ctx)
                raise AssertionError(f"{doc['_test_bad_kind']} passed the contract")
            except BadDocument as bad:
                assert bad.kind == doc["_test_bad_kind"]


def test_a_document_with_invalid_utf8_becomes_a_quarantine_entry_not_an_error():
    """MongoDB refuses such writes (SecantusDB too: 'invalid BSON'), but a read must not stop at one
    if another writer or server lets it through: it is decoded with the bad bytes replaced and
    marked for quarantine; its neighbours in the batch decode as usual."""
    import bson
    from bson.codec_options import CodecOptions

    from dlt_pipelines.reader import DECODE_ALL_MAX_BYTES, Undecodable, batch_documents

    options = CodecOptions(tz_aware=True)
    now = f.ms(datetime.now(UTC))
    good = bson.encode({"_id": "u-1", "name": "ok", "_ingested_at": now})
    bad = bson.encode({"_id": "u-2", "name": "xx", "_ingested_at": now}).replace(b"xx\x00", b"\xff\xfe\x00")
    padding = "p" * DECODE_ALL_MAX_BYTES  # a batch over the limit is decoded document by document
    for raw in (good + bad + good, bson.encode({"_id": "big", "note": padding}) + bad + good):
        docs = list(batch_documents(raw, options))
        assert len(docs) == 3
        assert isinstance(docs[1], Undecodable)
        assert docs[1].doc["_id"] == "u-2" and docs[1].doc["name"] == "\ufffd\ufffd"
        assert docs[1].reason.startswith("invalid_utf8: ")
        assert not isinstance(docs[2], Undecodable) and docs[2]["_id"] == "u-1"
