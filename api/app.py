"""FastAPI app of seed 000 (DESIGN §7): sensor data, sensors, predictions, CSV export, device PUT.

Run: ``uvicorn api.app:app --port $API_PORT`` (started by ``make up``). Every endpoint needs an
``x-api-key`` header holding a key created with ``iot api-key create NAME``, except ``/health``
and the API docs (``/docs``, ``/redoc``, served from local files). What a request passes before
its body is read (control characters, body size, the key) is in ``api.guard``; the error
answers (503 while a database is away) and their OpenAPI entries in ``api.errors``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import psycopg
from bson import json_util
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, Security
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from api import docs, errors, health
from api.envelope import BadToken, decode_token, envelope
from api.guard import KEY_HEADER, RequestGuard
from dlt_pipelines import contract
from exports import sensor_csv
from iot_core.connections import mongo_client, mongo_db, pg_connect
from iot_core.contract import MAX_IDENTIFIER_LENGTH, MEASURE_NAMES, MEASURES, TIMESTAMP_FORMATS
from iot_core.timestamps import iso_utc

MAX_PAGE = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@asynccontextmanager
async def lifespan(app: FastAPI):
    # a PUT or a health probe while MongoDB is away answers 503 after this long, not 30 s
    client = mongo_client(serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)
    app.state.mongo = client  # older code's handle; requests use request.state.mongo
    # lifespan state: each server (or test client) running this app has its own client, so one
    # shutting down never closes the client another is serving with
    yield {"mongo": client}
    client.close()


app = FastAPI(
    title="IoT ELT platform API",
    description="Sensor readings, predictions and device ingestion (seed 000's API). "
                "Send your key in the `x-api-key` header.",
    version="1.0.0",
    lifespan=lifespan,
    docs_url=None,
    redoc_url=None,
)
app.add_middleware(RequestGuard)
errors.install_error_handlers(app)
docs.install_docs(app)
app.include_router(health.router)


def _openapi() -> dict:
    if app.openapi_schema is None:
        errors.document_responses(app)  # here, so routers included after this module's code count too
    return FastAPI.openapi(app)


app.openapi = _openapi


# ------------------------------------------------------------------ dependencies
def db(request: Request) -> Iterator[psycopg.Connection]:
    """The connection the request guard opened for the key check, else a new one."""
    conn = getattr(request.state, "pg", None)
    if conn is not None:
        yield conn
        return
    with pg_connect("api", autocommit=True) as conn:
        yield conn


def require_key(request: Request, conn: Annotated[psycopg.Connection, Depends(db)],
                _key: Annotated[str | None, Security(APIKeyHeader(name=KEY_HEADER, auto_error=False))] = None,
                ) -> psycopg.Connection:
    """The key was checked by the request guard before the body was read; this dependency marks
    the endpoint as needing it (OpenAPI ``security``) and refuses if the guard did not run."""
    if not getattr(request.state, "api_key_checked", False):
        raise HTTPException(401, f"missing {KEY_HEADER} header")
    return conn


Conn = Annotated[psycopg.Connection, Depends(require_key)]


def _epoch(value: float, name: str) -> datetime:
    if not math.isfinite(value):
        raise HTTPException(400, f"'{name}' must be a finite unix timestamp in seconds")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise HTTPException(400, f"'{name}' is not a valid unix timestamp in seconds") from e


def _window(from_: float, to: float) -> tuple[datetime, datetime]:
    start, end = _epoch(from_, "from"), _epoch(to, "to")
    if end < start:
        raise HTTPException(400, "'to' must not be before 'from'")
    return start, end


def _position(token: str | None) -> dict:
    try:
        return decode_token(token) or {}
    except BadToken as e:
        raise HTTPException(400, str(e)) from e


def _query(conn: psycopg.Connection, sql: str, params: dict) -> list[tuple]:
    # a missing table answers 503 "not built yet", an unreachable server 503 (api.errors)
    return conn.execute(sql, params).fetchall()


FromQ = Annotated[float, Query(alias="from", description="start, unix seconds (UTC)")]
ToQ = Annotated[float, Query(description="end, unix seconds (UTC), inclusive")]
DeviceQ = Annotated[str, Query(min_length=1, description="device id")]
MeasureQ = Annotated[str | None, Query(description="optional measure name")]
LimitQ = Annotated[int, Query(ge=1, le=MAX_PAGE, description="records per page")]
TokenQ = Annotated[str | None, Query(alias="NextToken", description="token from the previous page")]


def _timeseries_page(conn, table: str, extra_cols: str, from_: float, to: float, device: str,
                     measure: str | None, limit: int, token: str | None) -> tuple[list[tuple], dict | None, int]:
    start, end = _window(from_, to)
    pos = _position(token)
    params = {"device": device, "start": start, "end": end, "measure": measure, "limit": limit + 1,
              "after_t": pos.get("t"), "after_m": pos.get("m", "")}
    rows = _query(conn, f"""
        select time, device_id, measure_name, value{extra_cols}
        from {table}
        where device_id = %(device)s and time between %(start)s and %(end)s
          and (%(measure)s::text is null or measure_name = %(measure)s)
          and (%(after_t)s::timestamptz is null or (time, measure_name) > (%(after_t)s::timestamptz, %(after_m)s))
        order by time, measure_name
        limit %(limit)s""", params)
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = {"t": rows[-1][0].isoformat(), "m": rows[-1][2]}
    return rows, nxt, int(pos.get("n", 0)) + 1


# ------------------------------------------------------------------ endpoints
@app.get("/sensorsdata", summary="Readings of one device between two timestamps")
def get_sensorsdata(conn: Conn, from_: FromQ, to: ToQ, device: DeviceQ, measure: MeasureQ = None,
                    limit: LimitQ = 1000, next_token: TokenQ = None) -> dict:
    rows, nxt, n = _timeseries_page(conn, "stage.stg_sensor_readings", "", from_, to, device, measure, limit,
                                    next_token)
    records = [[r[0].isoformat(), r[1], r[2], r[3]] for r in rows]
    return envelope(records, ["time", "deviceId", "measure_name", "measure_value"],
                    ["timestamp", "str", "str", "float"], "SensorData", pages_consumed=n, next_position=nxt)


@app.get("/predictions", summary="Predictions of one device between two timestamps")
def get_predictions(conn: Conn, from_: FromQ, to: ToQ, device: DeviceQ, measure: MeasureQ = None,
                    limit: LimitQ = 1000, next_token: TokenQ = None) -> dict:
    rows, nxt, n = _timeseries_page(conn, "ml.predictions", ", model_name, model_version", from_, to, device,
                                    measure, limit, next_token)
    records = [[r[0].isoformat(), r[1], r[2], r[3], r[4], r[5]] for r in rows]
    return envelope(records, ["time", "deviceId", "measure_name", "measure_value", "model_name", "model_version"],
                    ["timestamp", "str", "str", "float", "str", "str"], "Predictions", pages_consumed=n,
                    next_position=nxt)


@app.get("/sensors", summary="The ids of every sensor that sent readings")
def get_sensors(conn: Conn, limit: LimitQ = 1000, next_token: TokenQ = None) -> dict:
    pos = _position(next_token)
    # loose index scan: one index probe per device instead of reading every reading
    rows = _query(conn, """
        with recursive devices as (
            (select device_id from stage.stg_sensor_readings
             where device_id > %(after)s order by device_id limit 1)
            union all
            select (select s.device_id from stage.stg_sensor_readings s
                    where s.device_id > d.device_id order by s.device_id limit 1)
            from devices d where d.device_id is not null
        )
        select device_id from devices where device_id is not null limit %(limit)s""",
                  {"after": pos.get("d", ""), "limit": limit + 1})
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = {"d": rows[-1][0]}
    return envelope([[r[0]] for r in rows], ["deviceId"], ["str"], "Sensors", "Tabular",
                    pages_consumed=int(pos.get("n", 0)) + 1, next_position=nxt)


class CSVResponse(StreamingResponse):
    media_type = "text/csv"


@app.get("/sensorsdata/export", summary="CSV export: one row per device and time, one column per measure",
         response_class=CSVResponse,
         responses={200: {"description": "the wide CSV (header time,deviceId,<measures>); text cells that a "
                                         "spreadsheet would run as a formula start with a quote (docs/exports.md)",
                          "content": {"text/csv": {"schema": {"type": "string"}}}}})
def export_csv(conn: Conn, from_: FromQ, to: ToQ, device: Annotated[str | None, Query()] = None) -> StreamingResponse:
    start, end = _window(from_, to)
    _query(conn, f"select 1 from {sensor_csv.SOURCE_TABLE} limit 0", {})  # 503 before streaming starts
    # `to` is inclusive here (seed 000); the export's windows are half-open. The CSV streams on
    # its own connection: the request's one is released when the handler returns.
    chunks = sensor_csv.csv_chunks(start, end + timedelta(microseconds=1), device)
    name = f"sensorsdata_{start:%Y%m%d}_{end:%Y%m%d}.csv"
    return CSVResponse(chunks, media_type="text/csv; charset=utf-8",
                       headers={"Content-Disposition": f'attachment; filename="{name}"'})


Reading = Annotated[StrictFloat | StrictInt, Field(allow_inf_nan=False)]


class DevicePayload(BaseModel):
    """The device payload of seed 000. Shapes and JSON types are checked here; everything else
    (device registered and of the right kind, timestamp format and range, value ranges) by the
    extract's own contract code (dlt_pipelines.contract), so 201 means the reading reaches raw."""

    devid: StrictStr = Field(min_length=1, max_length=MAX_IDENTIFIER_LENGTH,
                             description="device id, registered in the devices collection")
    ts: StrictStr | StrictInt | StrictFloat = Field(
        description="time of the measure: " + "; ".join(
            v for k, v in TIMESTAMP_FORMATS.items() if k != "bson_datetime")
        + ". Without an offset it is refused unless DEVICE_TIMEZONE is set. Stored normalised to "
          "ISO 8601 UTC; the value as sent is kept in ts_sent.")
    readings: list[Reading] = Field(
        min_length=len(MEASURES), max_length=len(MEASURES),
        description="the measures in this order: " + ", ".join(f"{m.name} ({m.unit}, {m.minimum:g} to {m.maximum:g})"
                                                              for m in MEASURES))


def _refused(bad: contract.BadDocument) -> HTTPException:
    return HTTPException(422, {"kind": bad.kind, "reason": str(bad),
                               "message": "the extract would quarantine this reading: not stored"})


def _device_registry(db, devid: str) -> dict[str, str | None]:
    """The registry entry of one device as the extract sees the registry (pipeline.known_device_ids)."""
    found = db["devices"].find_one({"_id": devid}, {"kind": 1})
    if found is None:
        return {}
    return {devid: found.get("kind") if isinstance(found.get("kind"), str) else None}


def _reading_id(devid: str, moment: datetime) -> str:
    """The deterministic _id of the generators' scheme (whole seconds), milliseconds when there are any."""
    seconds, micros = divmod((moment - _EPOCH) // timedelta(microseconds=1), 1_000_000)
    return f"aq:{devid}:{seconds}" if micros == 0 else f"aq:{devid}:{seconds}.{micros // 1000:03d}"


def _same_reading(stored: dict, doc: dict, ctx: contract.Context) -> bool:
    """Whether a stored document is the same reading (same device, instant and values)."""
    try:
        kept = contract.flatten_air_quality({k: v for k, v in stored.items() if k != "_ingested_at"}, ctx).row
    except contract.BadDocument:
        return False
    new = contract.flatten_air_quality(doc, ctx).row
    return all(kept[k] == new[k] for k in ("devid", "ts_utc", *MEASURE_NAMES))


def _detail_object(description: str, keys: tuple[str, ...], or_list: bool = False) -> dict:
    """An error answer whose ``detail`` is an object (or FastAPI's validation list)."""
    detail: dict = {"type": "object", "properties": dict.fromkeys(keys, {}), "required": ["kind", "reason"]}
    if or_list:
        detail = {"anyOf": [detail, {"type": "array", "items": {"type": "object"}}]}
    return {"description": description, "content": {"application/json": {
        "schema": {"type": "object", "properties": {"detail": detail}, "required": ["detail"]}}}}


class StoredReading(BaseModel):
    """What PUT /sensorsdata stored (201) or found already stored (200)."""

    id: str = Field(description="the document's _id in MongoDB")
    status: str = Field(description="'stored' or 'already stored'")
    ts: str = Field(description="the reading's time, normalised to ISO 8601 UTC")


@app.put("/sensorsdata", status_code=201, summary="Store one device payload (lands in MongoDB)",
         response_model=StoredReading,
         responses={200: {"model": StoredReading, "description": "the same reading was already stored"},
                    409: _detail_object("another reading of this device at this instant is stored; the refused one "
                                        "is recorded as a conflict (collection rejected_writes)",
                                        ("kind", "reason", "id", "kept", "refused", "recorded_as")),
                    422: _detail_object("the payload breaks the data contract (detail: the reason the extract would "
                                        "quarantine it under), or its shape is wrong (detail: FastAPI's list of "
                                        "validation errors)", ("kind", "reason", "message"), or_list=True)})
def put_sensorsdata(request: Request, payload: DevicePayload, conn: Conn, response: Response) -> dict:
    from pymongo.errors import DuplicateKeyError

    now = datetime.now(UTC)
    # MongoDB unreachable answers 503 with Retry-After (api.errors); nothing was stored then
    db = mongo_db(request.state.mongo)
    ctx = contract.Context(now=now, known_devices=_device_registry(db, payload.devid))
    # the payload as a document, judged by the extract's code ...
    sent = {"devid": payload.devid, "ts": payload.ts, "readings": list(payload.readings)}
    try:
        row = contract.flatten_air_quality(sent, ctx).row
    except contract.BadDocument as bad:
        raise _refused(bad) from None
    # ... then stored with ts normalised to ISO 8601 UTC, the original kept beside it
    doc = {"_id": _reading_id(payload.devid, row["ts_utc"]), "devid": payload.devid,
           "ts": iso_utc(row["ts_utc"]), "readings": sent["readings"]}
    if doc["ts"] != payload.ts:
        doc["ts_sent"] = str(payload.ts)
    try:
        contract.flatten("air_quality", doc, ctx)  # what is stored passes too
    except contract.BadDocument as bad:
        raise _refused(bad) from None
    collection = db["air_quality"]
    try:
        collection.insert_one({**doc, "_ingested_at": now})
        return {"id": doc["_id"], "status": "stored", "ts": doc["ts"]}
    except DuplicateKeyError:
        stored = collection.find_one({"_id": doc["_id"]})
    if stored is not None and _same_reading(stored, {k: v for k, v in doc.items() if k != "_id"}, ctx):
        response.status_code = 200
        return {"id": doc["_id"], "status": "already stored", "ts": doc["ts"]}
    # a conflicting re-send: the stored reading stays; the refused one is recorded, never dropped
    digest = hashlib.sha256(json_util.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    conflict_id = f"air_quality:{doc['_id']}:{digest}"
    reason = (f"conflicting_resend: device {payload.devid} at {doc['ts']} already has other readings "
              f"({stored.get('readings') if stored else 'unknown'}); these were not stored")
    with contextlib.suppress(DuplicateKeyError):  # the same conflicting payload was recorded before
        db["rejected_writes"].insert_one({
            "_id": conflict_id, "collection": "air_quality", "document_id": doc["_id"], "reason": reason,
            "document": doc, "rejected_at": now, "_ingested_at": now})
    raise HTTPException(409, {"kind": "conflicting_resend", "reason": reason, "id": doc["_id"],
                              "kept": stored.get("readings") if stored else None, "refused": doc["readings"],
                              "recorded_as": conflict_id})


from api.alerts import router as alerts_router  # noqa: E402 - the router uses this module's key check

app.include_router(alerts_router)
