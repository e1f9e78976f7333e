"""`erase-user`: after it, nothing of the user remains in MongoDB or any warehouse layer."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dbt_support import DAY, fresh_warehouse, load_scenario

from dbt_project.runner import build
from iot_core.connections import mongo_client, mongo_db, pg_connect
from privacy.erasure import erase_user, user_hash

USER, DEVICE = "u_consent", "w1"


@pytest.fixture(scope="module")
def world(wh):
    settings = wh.model_copy(update={"mongo_db": "iot_test_erasure"})
    fresh_warehouse(settings)
    load_scenario(settings)
    build(settings=settings)
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:  # a downstream ml table too
        conn.execute("create table if not exists ml.predictions_erasure_probe (time timestamptz, device_id text)")
        conn.execute("insert into ml.predictions_erasure_probe values (now(), %s), (now(), 'aq1')", (DEVICE,))
    client = mongo_client(settings)
    db = mongo_db(client, settings)
    client.drop_database(db.name)
    db["users"].insert_many([{"_id": USER, "user_id": USER, "devices": [DEVICE]},
                             {"_id": "u_never", "user_id": "u_never", "devices": ["w2"]}])
    db["devices"].insert_many([{"_id": DEVICE, "device_id": DEVICE, "owner_user_id": USER},
                               {"_id": "w2", "device_id": "w2", "owner_user_id": "u_never"}])
    db["heart_rates"].insert_many([{"_id": f"hr:{d}", "device_id": d, "created_at": DAY,
                                    "ended_at": DAY + timedelta(hours=4), "metrics": []} for d in (DEVICE, "w2")])
    db["rejected_writes"].insert_one({"collection": "users", "document": {"_id": USER, "user_id": USER}})
    yield settings, db
    client.drop_database(db.name)
    client.close()


def traces(settings, db) -> dict[str, int]:
    """Every place still mentioning the user or their device (whole identifiers)."""
    found = {}
    pattern = rf"(^|[^A-Za-z0-9_])({USER}|{DEVICE})([^A-Za-z0-9_]|$)"
    with pg_connect("superuser", settings=settings) as conn:
        tables = conn.execute("select table_schema || '.' || table_name from information_schema.tables "
                              "where table_schema in ('raw', 'stage', 'agg', 'curated', 'ml', 'ops') "
                              "and (table_schema, table_name) <> ('ops', 'erasures')").fetchall()
        for (t,) in tables:
            n = conn.execute(f"select count(*) from {t} as x where x::text ~ %s", (pattern,)).fetchone()[0]
            if n:
                found[t] = n
    regex = re.compile(pattern)
    for coll in db.list_collection_names():
        n = sum(1 for doc in db[coll].find() if regex.search(str(doc)))
        if n:
            found[f"mongo.{coll}"] = n
    return found


def test_erasure_leaves_nothing_of_the_user_and_is_recorded(world):
    settings, db = world
    before = traces(settings, db)
    assert {"mongo.users", "mongo.heart_rates", "raw.users", "raw.heart_rates__metrics", "stage.stg_heart_rate",
            "stage.dim_users", "agg.agg_user_daily", "curated.curated_research_minutely",
            "ml.predictions_erasure_probe", "stage.stg_rejects"} <= set(before)

    result = erase_user(USER, settings=settings, progress=False)
    assert result["devices"] == [DEVICE]
    assert traces(settings, db) == {}
    # other users are untouched
    with pg_connect("superuser", settings=settings) as conn:
        assert conn.execute("select count(*) from stage.stg_heart_rate where device_id = 'w2'").fetchone()[0] == 480
        assert conn.execute("select count(*) from ml.predictions_erasure_probe").fetchone()[0] == 1
    assert db["users"].count_documents({"_id": "u_never"}) == 1

    # a re-run deletes nothing more; both runs are recorded under the hash, never the id
    again = erase_user(USER, settings=settings, progress=False)
    assert again["deleted"] == {k: 0 for k in again["deleted"]} or sum(again["deleted"].values()) == 0
    with pg_connect("superuser", settings=settings) as conn:
        rows = conn.execute("select user_id_sha256, deleted_rows from ops.erasures order by id").fetchall()
    assert [h for h, _ in rows] == [user_hash(USER)] * 2
    assert rows[0][1]["curated.curated_research_minutely"] > 0

    # and an incremental transform afterwards does not bring anything back
    build(settings=settings)
    assert traces(settings, db) == {}
