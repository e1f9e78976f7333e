"""The HTTP API against real PostgreSQL and the MongoDB-protocol server (seed 000's contract)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from iot_core.connections import mongo_client, mongo_db, pg_connect

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MEASURES = ("iaq", "temperature", "humidity", "pressure", "voc", "co2", "iaq_accuracy")


@pytest.fixture(scope="module")
def warehouse_rows(client, reading_tables):
    """stage and ml tables as dbt and the forecast DAG build them (docs/contracts.md §3-4)."""
    with pg_connect("transformer") as conn:
        with conn.cursor().copy("copy stage.stg_sensor_readings from stdin") as copy:
            for device in ("dev-a", "dev-b"):
                for minute in range(30):
                    for i, m in enumerate(MEASURES):
                        copy.write_row((T0 + timedelta(minutes=minute), device, m, 100.0 + minute + i))
        for h in range(1, 16):
            conn.execute("insert into ml.predictions values (%s, 'dev-a', %s, %s, 'ridge', '3', %s)",
                         (T0 + timedelta(minutes=29 + h), f"iaq~{h}", 150.0 + h, T0 + timedelta(minutes=29)))


def ts(d: datetime) -> int:
    return int(d.timestamp())


def test_every_endpoint_needs_a_valid_key(client, api_key):
    from api.keys import create_key, revoke_key

    assert client.get("/sensors").status_code == 401
    assert client.get("/sensors", headers={"x-api-key": "iot_wrong"}).status_code == 403
    key_id, key = create_key("short-lived")
    assert client.get("/sensors", headers={"x-api-key": key}).status_code != 403
    assert revoke_key(key_id)
    assert client.get("/sensors", headers={"x-api-key": key}).status_code == 403


def test_missing_warehouse_tables_give_503_not_500(client, api_key):
    with pg_connect("transformer", autocommit=True) as conn:
        exists = conn.execute("select to_regclass('stage.stg_sensor_readings')").fetchone()[0]
    if exists:
        pytest.skip("tables already created by an earlier test")
    r = client.get("/sensors", headers={"x-api-key": api_key})
    assert r.status_code == 503
    assert "run the extract and transform" in r.json()["detail"]


def test_sensorsdata_envelope_and_measure_filter(client, api_key, warehouse_rows):
    q = {"from": ts(T0), "to": ts(T0 + timedelta(minutes=9)), "device": "dev-a", "measure": "co2"}
    body = client.get("/sensorsdata", params=q, headers={"x-api-key": api_key}).json()
    assert body["Metadata"]["ColumnName"] == ["time", "deviceId", "measure_name", "measure_value"]
    assert body["Metadata"]["ColumnType"] == ["timestamp", "str", "str", "float"]
    assert len(body["Records"]) == 10
    assert {r[2] for r in body["Records"]} == {"co2"}
    assert body["Records"][0] == [T0.isoformat(), "dev-a", "co2", 105.0]
    assert "NextToken" not in body["ExecutionInfo"]


def test_pagination_returns_every_record_once(client, api_key, warehouse_rows):
    q = {"from": ts(T0), "to": ts(T0 + timedelta(hours=1)), "device": "dev-b", "limit": 37}
    seen, pages, token = [], 0, None
    while True:
        r = client.get("/sensorsdata", params={**q, **({"NextToken": token} if token else {})},
                       headers={"x-api-key": api_key}).json()
        pages += 1
        assert r["ExecutionInfo"]["NextTokenConsumed"] == pages
        seen += [(rec[0], rec[2]) for rec in r["Records"]]
        token = r["ExecutionInfo"].get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 30 * len(MEASURES)
    assert pages == -(-30 * len(MEASURES) // 37)


def test_sensors_and_predictions(client, api_key, warehouse_rows):
    h = {"x-api-key": api_key}
    sensors = client.get("/sensors", headers=h).json()
    assert sensors["Records"] == [["dev-a"], ["dev-b"]]
    preds = client.get("/predictions", headers=h, params={
        "from": ts(T0), "to": ts(T0 + timedelta(hours=1)), "device": "dev-a", "measure": "iaq~5"}).json()
    assert preds["Records"] == [[(T0 + timedelta(minutes=34)).isoformat(), "dev-a", "iaq~5", 155.0, "ridge", "3"]]


def test_csv_export_is_wide(client, api_key, warehouse_rows):
    r = client.get("/sensorsdata/export", headers={"x-api-key": api_key},
                   params={"from": ts(T0), "to": ts(T0 + timedelta(minutes=1)), "device": "dev-a"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0] == "time,deviceId," + ",".join(MEASURES)
    assert lines[1].split(",")[1:] == ["dev-a", "100.0", "101.0", "102.0", "103.0", "104.0", "105.0", "106.0"]
    assert len(lines) == 3


@pytest.mark.parametrize("params, fragment", [
    ({"from": 10, "to": 5, "device": "dev-a"}, "'to' must not be before 'from'"),
    ({"from": 1e300, "to": 1e301, "device": "dev-a"}, "not a valid unix timestamp"),
    ({"from": 0, "to": 5, "device": "dev-a", "NextToken": "!!garbage"}, "NextToken"),
])
def test_bad_queries_get_400(client, api_key, warehouse_rows, params, fragment):
    r = client.get("/sensorsdata", params=params, headers={"x-api-key": api_key})
    assert r.status_code == 400
    assert fragment in r.json()["detail"]


AQ_DEVICE = "api-dev"
WATCH = "api-watch"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def registry(client):
    """An empty air_quality collection and a registry with one sensor and one watch."""
    with mongo_client() as mc:
        db = mongo_db(mc)
        for name in ("air_quality", "rejected_writes", "devices"):
            db.drop_collection(name)
        db["devices"].insert_many([{"_id": AQ_DEVICE, "device_id": AQ_DEVICE, "kind": "air_quality"},
                                   {"_id": WATCH, "device_id": WATCH, "kind": "watch"}])
    yield


def test_put_lands_in_mongodb_once_normalised_and_a_conflict_is_recorded(client, api_key, registry):
    payload = {"devid": AQ_DEVICE, "ts": "2024-03-01T23:00:00+11:00", "readings": [80, 24.1, 50, 101.2, 0.5, 650, 3]}
    h = {"x-api-key": api_key}
    first = client.put("/sensorsdata", json=payload, headers=h)
    assert first.status_code == 201 and first.json()["status"] == "stored"
    again = client.put("/sensorsdata", json=payload, headers=h)
    assert again.status_code == 200 and again.json()["status"] == "already stored"
    # the same instant spelled another way is the same reading
    same = {**payload, "ts": "Fri, 01 Mar 2024 12:00:00 GMT"}
    assert client.put("/sensorsdata", json=same, headers=h).status_code == 200
    changed = {**payload, "readings": [81, 24.1, 50, 101.2, 0.5, 650, 3]}
    conflict = client.put("/sensorsdata", json=changed, headers=h)
    assert conflict.status_code == 409
    detail = conflict.json()["detail"]
    assert detail["kind"] == "conflicting_resend" and detail["kept"][0] == 80 and detail["refused"][0] == 81
    with mongo_client() as mc:
        db = mongo_db(mc)
        docs = list(db["air_quality"].find({"devid": AQ_DEVICE}))
        recorded = list(db["rejected_writes"].find())
    assert len(docs) == 1
    assert docs[0]["_id"] == f"aq:{AQ_DEVICE}:{ts(datetime(2024, 3, 1, 12, tzinfo=UTC))}"
    assert docs[0]["ts"] == "2024-03-01T12:00:00Z" and docs[0]["ts_sent"] == payload["ts"]
    assert docs[0]["_ingested_at"] is not None and docs[0]["readings"] == payload["readings"]
    # never silently dropped: the refused values are recorded (the extract quarantines them)
    assert len(recorded) == 1 and recorded[0]["_id"] == detail["recorded_as"]
    assert recorded[0]["document"]["readings"][0] == 81


def good(**changes) -> dict:
    return {"devid": AQ_DEVICE, "ts": (NOW - timedelta(minutes=5)).isoformat(),
            "readings": [80, 24.1, 50, 101.2, 0.5, 650, 3]} | changes


def reading(i: int, value: float) -> list:
    values = [80, 24.1, 50, 101.2, 0.5, 650, 3]
    values[i] = value
    return values


# Each kind of payload the extract would quarantine, with the reason kind the API must answer.
REFUSED = [
    (good(devid="no-such-device"), "unknown_device"),
    (good(devid=WATCH), "device_kind_mismatch"),                       # a watch cannot send air quality
    (good(devid="api-dev\u0000"), "unstorable_text"),
    (good(devid="api\ndev"), "control_character"),
    (good(ts="2024-03-01T12:00:00"), "ts_without_offset"),
    (good(ts="2024-03-01T12:00:00+15:00"), "ts_offset_out_of_range"),
    (good(ts="Wed, 07 Feb 2023 11:29:19 GMT"), "unparseable_ts"),      # weekday contradicts the date
    (good(ts="yesterday at noon"), "unparseable_ts"),
    (good(ts="1999-12-31T23:59:59Z"), "ts_before_2000"),
    (good(ts=(NOW + timedelta(hours=2)).isoformat()), "ts_far_future"),
    (good(ts=10 ** 20), "ts_far_future"),
    *[(good(readings=reading(i, value)), "out_of_range")
      for i, value in ((0, 501), (1, -41), (2, 100.5), (3, 29), (4, 1001), (5, 40_001), (6, 4))],
]


@pytest.mark.parametrize("payload, kind", REFUSED, ids=[k for _, k in REFUSED])
def test_put_refuses_with_the_extracts_reason_what_the_extract_would_quarantine(client, api_key, registry,
                                                                             payload, kind):
    r = client.put("/sensorsdata", json=payload, headers={"x-api-key": api_key})
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["kind"] == kind and r.json()["detail"]["reason"].startswith(f"{kind}: ")
    with mongo_client() as mc:
        assert mongo_db(mc)["air_quality"].count_documents({}) == 0


@pytest.mark.parametrize("payload, fragment", [
    ({"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [1, 2, 3, 4, 5, 6]}, "at least 7"),
    ({"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [1, 2, 3, "x", 5, 6, 7]}, "valid number"),
    ({"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [1, 2, 3, "4", 5, 6, 7]}, "valid number"),
    ({"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [1, 2, 3, True, 5, 6, 7]}, "valid number"),
    ({"devid": "", "ts": "2024-03-01T00:00:00Z", "readings": [1] * 7}, "at least 1 character"),
    ({"devid": "d" * 129, "ts": "2024-03-01T00:00:00Z", "readings": [1] * 7}, "at most 128 characters"),
    ({"ts": "2024-03-01T00:00:00Z", "readings": [1] * 7}, "Field required"),
    ({"devid": "d", "ts": ["2024-03-01T00:00:00Z"], "readings": [1] * 7}, "ts"),
])
def test_bad_payload_shapes_get_422_with_reason(client, api_key, payload, fragment):
    r = client.put("/sensorsdata", json=payload, headers={"x-api-key": api_key})
    assert r.status_code == 422
    assert fragment in r.text


def test_nan_reading_is_refused(client, api_key):
    body = '{"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [NaN, 1, 1, 1, 1, 1, 1]}'
    r = client.put("/sensorsdata", content=body, headers={"x-api-key": api_key, "content-type": "application/json"})
    assert r.status_code == 422


def test_what_the_api_accepts_reaches_raw_and_what_it_refuses_does_not(client, api_key, registry, tmp_path):
    """API = extract: every 201 is loaded into raw.air_quality at the right UTC time, nothing the API
    accepted is quarantined, and the one conflicting re-send reaches raw.quarantine."""
    from dlt_pipelines import load_raw

    base = NOW - timedelta(hours=1)
    accepted = {
        "iso": good(ts=base.isoformat()),
        "http_date": good(ts=(base + timedelta(minutes=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")),
        "unix_seconds": good(ts=ts(base + timedelta(minutes=2))),                 # as the OpenAPI documents
        "unix_seconds_text": good(ts=str(ts(base + timedelta(minutes=3)))),
        "unix_millis": good(ts=ts(base + timedelta(minutes=4)) * 1000),
        "offset": good(ts=(base + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-5))).isoformat()),
        "fraction": good(ts=(base + timedelta(minutes=6, milliseconds=250)).isoformat()),
        "limits": good(ts=(base + timedelta(minutes=7)).isoformat(), readings=[0, -40, 0, 30, 0, 40_000, 3]),
    }
    expected = {name: base + timedelta(minutes=i) for i, name in enumerate(accepted)}
    expected["fraction"] += timedelta(milliseconds=250)
    h = {"x-api-key": api_key}
    for name, payload in accepted.items():
        r = client.put("/sensorsdata", json=payload, headers=h)
        assert r.status_code == 201, (name, r.text)
    for payload, _ in REFUSED:
        assert client.put("/sensorsdata", json=payload, headers=h).status_code == 422
    conflict = {**accepted["iso"], "readings": reading(0, 99)}
    assert client.put("/sensorsdata", json=conflict, headers=h).status_code == 409

    load_raw(["devices", "air_quality", "rejected_writes"], pipelines_dir=str(tmp_path))
    with pg_connect("loader") as conn:
        loaded = dict(conn.execute("select ts_sent, ts_utc from raw.air_quality").fetchall())
        quarantined = conn.execute("select collection, reason from raw.quarantine").fetchall()
    by_sent = {str(p["ts"]): expected[name] for name, p in accepted.items()}
    assert {str(k): v for k, v in loaded.items() if k is not None} == {
        k: v for k, v in by_sent.items() if not k.endswith("Z")}
    assert sorted(loaded.values()) == sorted(expected.values())
    # (the test registry's documents are not complete devices: the extract quarantines them)
    readings = [(c, reason) for c, reason in quarantined if c != "devices"]
    assert [c for c, _ in readings] == ["rejected_writes"]
    assert "conflicting_resend" in readings[0][1]
