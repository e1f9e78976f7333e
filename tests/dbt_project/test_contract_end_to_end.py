"""The data contract end to end on the real servers: documents written to the MongoDB-protocol
server with pymongo, extracted by dlt, staged by dbt (docs/contracts.md).

- a user whose research consent starts in 2 days loads (a "valid from" date, not a measurement);
- HTTP-date, unix-seconds and unix-milliseconds ``ts`` reach stage at the right UTC time;
- ``history[].technician_id: "T-17"`` is quarantined by the extract, and a raw row holding it
  (loaded before that check) no longer stops the stage build;
- two user documents with the same ``user_id`` leave stage building: one is kept, the other is
  in stage.stg_rejects.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from bson.int64 import Int64

from dbt_project.runner import build
from dlt_pipelines import load_raw
from iot_core.connections import mongo_client, mongo_db, pg_connect

NOW = datetime.now(UTC).replace(microsecond=0)
T = NOW - timedelta(hours=2)        # the readings' base time
HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"


def device(device_id: str, kind: str, owner: str | None = None, history: list | None = None) -> dict:
    return {
        "_id": device_id, "device_id": device_id, "kind": kind, "owner_user_id": owner,
        "location": None if owner else {"lat": 55.9, "long": -3.2, "description": "office", "building": "A",
                                         "floor": 2, "room": "2.01"},
        "manufacturer": {"name": "Acme", "website": None}, "model": "m1", "mac": "00:11:22:33:44:55",
        "installed_at": NOW - timedelta(days=30),
        "history": history if history is not None else [
            {"ts": NOW - timedelta(days=30), "action": "INSTALLED", "technician_id": 17, "notes": "ok"}],
        "active": True, "_ingested_at": NOW,
    }


def user(_id: str, user_id: str, devices: list[str], research_asof: datetime | None) -> dict:
    return {
        "_id": _id, "user_id": user_id, "age": 40, "height": 170, "gender": "other",
        "email": f"{user_id}@example.org", "dob": datetime(NOW.year - 40, 1, 2, tzinfo=UTC),
        "created_at": NOW - timedelta(days=100), "devices": devices,
        "share_with_research_asof": research_asof, "share_with_public_asof": None,
        "share_with_friends_asof": None, "_ingested_at": NOW,
    }


READING_TIMES = {   # ts as the device sends it -> the UTC time stage must show
    "http_date": (T.strftime(HTTP_DATE), T),
    "unix_seconds": (int((T + timedelta(minutes=1)).timestamp()), T + timedelta(minutes=1)),
    "unix_seconds_text": (str(int((T + timedelta(minutes=2)).timestamp())), T + timedelta(minutes=2)),
    "unix_millis": (Int64(int((T + timedelta(minutes=3)).timestamp()) * 1000), T + timedelta(minutes=3)),
    "iso_offset": ((T + timedelta(minutes=4, hours=-5)).strftime("%Y-%m-%dT%H:%M:%S-05:00"), T + timedelta(minutes=4)),
}


@pytest.fixture(scope="module")
def staged(isolated_warehouse, mongo_server, tmp_path_factory):
    settings = isolated_warehouse
    client = mongo_client()
    db = mongo_db(client)
    for name in ("users", "devices", "air_quality", "heart_rates", "steps", "sleeps", "rejected_writes"):
        db.drop_collection(name)
    db["devices"].insert_many([
        device("aq-1", "air_quality"),
        device("w-1", "watch", owner="u-1"),
        device("w-2", "watch", owner="u-dup"),
        device("w-bad", "watch", owner="u-1", history=[
            {"ts": NOW - timedelta(days=3), "action": "CALIBRATED", "technician_id": "T-17", "notes": ""}]),
    ])
    db["users"].insert_many([
        user("u-1", "u-1", ["w-1"], research_asof=NOW + timedelta(days=2)),   # consent starts in 2 days
        user("u-dup", "u-dup", ["w-2"], research_asof=None),
        user("u-dup-second", "u-dup", ["w-2"], research_asof=None),            # the same user_id again
    ])
    db["air_quality"].insert_many([
        {"_id": f"aq:aq-1:{name}", "devid": "aq-1", "ts": sent, "readings": [50.0, 21.5, 40.0, 101.3, 0.5, 600.0, 3],
         "_ingested_at": NOW} for name, (sent, _) in READING_TIMES.items()])
    client.close()

    result = load_raw(pipelines_dir=str(tmp_path_factory.mktemp("dlt")))
    # a device row as an older extract loaded it, before the contract checked history
    with pg_connect("loader", settings=settings) as conn:
        conn.execute(
            "insert into raw.devices (_id, device_id, kind, owner_user_id, manufacturer_name, model, mac, "
            "installed_at, active, history, _ingested_at, _dlt_load_id) values "
            "('w-legacy', 'w-legacy', 'watch', 'u-1', 'Acme', 'm1', 'x', now(), true, %s, now(), 'legacy')",
            (json.dumps([{"ts": "2026-01-01T00:00:00Z", "action": "INSTALLED", "technician_id": "T-17",
                          "notes": "old load"},
                         {"ts": "2026-02-30T00:00:00Z", "action": "CALIBRATED", "technician_id": 3}]),))
    build(select=["tag:stage"], settings=settings)
    return settings, result


def q(settings, sql, *params):
    with pg_connect("superuser", settings=settings) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_user_whose_consent_starts_in_two_days_loads(staged):
    settings, result = staged
    assert q(settings, "select user_id from raw.users where user_id = 'u-1'") == [("u-1",)]
    consent = q(settings, "select share_with_research_asof from stage.dim_users where user_id = 'u-1'")
    assert consent and consent[0][0] > NOW + timedelta(days=1)
    assert not any(r[0] == "u-1" for r in q(settings, "select source_id from raw.quarantine"))


def test_http_date_and_unix_timestamps_reach_stage_at_the_right_utc_time(staged):
    settings, _ = staged
    got = dict(q(settings, "select r.ts, s.time from raw.air_quality as r join stage.stg_sensor_readings as s "
                           "on s.device_id = r.devid and s.time = r.ts_utc and s.measure_name = 'iaq'"))
    assert {str(sent): utc for sent, utc in READING_TIMES.values()} == got
    assert q(settings, "select count(*) from raw.quarantine where collection = 'air_quality'") == [(0,)]


def test_technician_id_t17_is_quarantined_and_a_raw_row_with_it_leaves_stage_building(staged):
    settings, _ = staged
    reason = q(settings, "select reason from raw.quarantine where collection = 'devices' and source_id = 'w-bad'")
    assert reason and reason[0][0].startswith("wrong_type: history[0].technician_id")
    # the legacy row: the device is in dim_devices, its bad events are rejected with a reason
    assert q(settings, "select count(*) from stage.dim_devices where device_id = 'w-legacy'") == [(1,)]
    assert q(settings, "select count(*) from stage.stg_device_history where device_id = 'w-legacy'") == [(0,)]
    rejects = dict(q(settings, "select source_id, reject_reason from stage.stg_rejects "
                               "where source_table = 'raw.devices' and device_id = 'w-legacy'"))
    assert rejects == {"w-legacy#history[0]": "wrong_type", "w-legacy#history[1]": "unparseable_ts"}
    # the good devices' history is there, with typed technician ids
    assert q(settings, "select technician_id from stage.stg_device_history where device_id = 'aq-1'") == [(17,)]


def test_a_duplicate_user_id_leaves_stage_building_and_is_rejected(staged):
    settings, _ = staged
    assert q(settings, "select count(*) from raw.users where user_id = 'u-dup'") == [(2,)]
    assert q(settings, "select user_id from stage.dim_users where user_id = 'u-dup'") == [("u-dup",)]
    rejected = q(settings, "select source_id, reject_reason, raw_value from stage.stg_rejects "
                           "where source_table = 'raw.users'")
    assert rejected == [("u-dup-second", "duplicate_user_id", "user_id u-dup, kept _id u-dup")]
