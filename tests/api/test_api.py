"""The HTTP API against real PostgreSQL and the MongoDB-protocol server (seed 000's contract)."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from iot_core.connections import mongo_client, mongo_db, pg_connect

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MEASURES = ("iaq", "temperature", "humidity", "pressure", "voc", "co2", "iaq_accuracy")


@pytest.fixture(scope="module")
def client(isolated_warehouse, mongo_server):
    from api.app import app

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def api_key(client):
    from api.keys import create_key

    return create_key("tests")[1]


@pytest.fixture(scope="module")
def warehouse_rows(client):
    """stage and ml tables as dbt and the forecast DAG build them (docs/contracts.md §3-4)."""
    with pg_connect("transformer") as conn:
        conn.execute("""create table stage.stg_sensor_readings (
            time timestamptz not null, device_id text not null, measure_name text not null,
            value double precision, primary key (device_id, measure_name, time))""")
        conn.execute("""create table ml.predictions (
            time timestamptz not null, device_id text not null, measure_name text not null,
            value double precision, model_name text, model_version text, issued_at timestamptz,
            primary key (device_id, time, measure_name))""")
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


def test_put_lands_in_mongodb_once(client, api_key):
    with mongo_client() as mc:
        mongo_db(mc)["air_quality"].delete_many({"devid": "api-dev"})
    payload = {"devid": "api-dev", "ts": "2024-03-01T23:00:00+11:00", "readings": [80, 24.1, 50, 101.2, 0.5, 650, 3]}
    h = {"x-api-key": api_key}
    first = client.put("/sensorsdata", json=payload, headers=h)
    assert first.status_code == 201 and first.json()["status"] == "stored"
    assert client.put("/sensorsdata", json=payload, headers=h).json()["status"] == "already stored"
    changed = {**payload, "readings": [81, 24.1, 50, 101.2, 0.5, 650, 3]}
    assert client.put("/sensorsdata", json=changed, headers=h).status_code == 409
    with mongo_client() as mc:
        docs = list(mongo_db(mc)["air_quality"].find({"devid": "api-dev"}))
    assert len(docs) == 1
    assert docs[0]["_id"] == f"aq:api-dev:{ts(datetime(2024, 3, 1, 12, tzinfo=UTC))}"
    assert docs[0]["_ingested_at"] is not None and docs[0]["readings"] == payload["readings"]


@pytest.mark.parametrize("payload, fragment", [
    ({"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [1, 2, 3, 4, 5, 6]}, "at least 7"),
    ({"devid": "d", "ts": "yesterday", "readings": [1] * 7}, "neither ISO-8601"),
    ({"devid": "d", "ts": "1999-12-31T00:00:00Z", "readings": [1] * 7}, "before 2000"),
    ({"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [1, 2, 3, "x", 5, 6, 7]}, "valid number"),
    ({"devid": "", "ts": "2024-03-01T00:00:00Z", "readings": [1] * 7}, "at least 1 character"),
    ({"ts": "2024-03-01T00:00:00Z", "readings": [1] * 7}, "Field required"),
])
def test_bad_payloads_get_422_with_reason(client, api_key, payload, fragment):
    r = client.put("/sensorsdata", json=payload, headers={"x-api-key": api_key})
    assert r.status_code == 422
    assert fragment in r.text


def test_nan_reading_is_refused(client, api_key):
    body = '{"devid": "d", "ts": "2024-03-01T00:00:00Z", "readings": [NaN, 1, 1, 1, 1, 1, 1]}'
    r = client.put("/sensorsdata", content=body, headers={"x-api-key": api_key, "content-type": "application/json"})
    assert r.status_code == 422
