"""The extract against the generators' own documents: every bad kind they make is caught."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from dlt_pipelines import load_raw

generators = pytest.importorskip("generators.backfill")


def test_generated_bad_documents_are_all_quarantined_with_their_kind(fresh, raw):
    from generators.devices import build_fleet
    from generators.writer import MongoWriter

    start = datetime(2026, 11, 2, tzinfo=UTC)
    fleet = build_fleet(users=3, sensors=3, seed=7, anchor=start)
    generators.backfill(MongoWriter(fresh), fleet, start, start + timedelta(hours=12), bad_rate=0.08,
                        progress=False)
    marked = {}
    for collection in fresh.list_collection_names():
        for doc in fresh[collection].find({"_test_bad_kind": {"$exists": True}}, {"_test_bad_kind": 1}):
            marked[(collection, str(doc["_id"]))] = doc["_test_bad_kind"]
    assert len(set(marked.values())) >= 10, "the generator should have produced most bad kinds"

    result = load_raw()

    quarantined = {(c, s): reason for c, s, reason in raw("select collection, source_id, reason from raw.quarantine")}
    wrong = {key: (kind, quarantined.get(key)) for key, kind in marked.items()
             if not (quarantined.get(key) or "").startswith(f"{kind}:")}
    assert not wrong, wrong
    assert len(quarantined) == len(marked), "a good document was quarantined"
    good_aq = fresh.air_quality.count_documents({"_test_bad_kind": {"$exists": False}})
    assert raw("select count(*) from raw.air_quality") == [(good_aq,)]
    assert result["loaded"]["air_quality"] == good_aq
    assert Counter(r.split(":")[0] for r in quarantined.values()) == Counter(marked.values())
