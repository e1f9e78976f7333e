"""FastAPI app of seed 000 (DESIGN §7): sensor data, sensors, predictions, CSV export, device PUT.

Run: ``uvicorn api.app:app --port $API_PORT`` (started by ``make up``). Every endpoint needs an
``x-api-key`` header holding a key created with ``iot api-key create NAME``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from api import keys
from api.envelope import BadToken, decode_token, envelope
from exports import sensor_csv
from iot_core.connections import mongo_client, mongo_db, pg_connect

READINGS_ORDER = sensor_csv.MEASURES
MAX_PAGE = 10_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.mongo = mongo_client()
    yield
    app.state.mongo.close()


app = FastAPI(
    title="IoT ELT platform API",
    description="Sensor readings, predictions and device ingestion (seed 000's API). "
                "Send your key in the `x-api-key` header.",
    version="1.0.0",
    lifespan=lifespan,
)


def _json_safe(value):
    """Validation errors echo the input; NaN/Infinity would make that response itself fail."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})


# ------------------------------------------------------------------ dependencies
def db() -> Iterator[psycopg.Connection]:
    with pg_connect("api", autocommit=True) as conn:
        yield conn


def require_key(conn: Annotated[psycopg.Connection, Depends(db)],
                x_api_key: Annotated[str | None, Header()] = None) -> psycopg.Connection:
    if not x_api_key:
        raise HTTPException(401, "missing x-api-key header")
    try:
        valid = keys.is_valid(x_api_key, conn)
    except psycopg.errors.UndefinedTable:
        valid = False  # no key was ever created
    if not valid:
        raise HTTPException(403, "invalid or revoked API key")
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
    try:
        return conn.execute(sql, params).fetchall()
    except psycopg.errors.UndefinedTable as e:
        raise HTTPException(503, f"the warehouse is not built yet ({e.diag.message_primary}); "
                                 "run the extract and transform DAGs first") from e


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


@app.get("/sensorsdata/export", summary="CSV export: one row per device and time, one column per measure")
def export_csv(conn: Conn, from_: FromQ, to: ToQ, device: Annotated[str | None, Query()] = None) -> StreamingResponse:
    start, end = _window(from_, to)
    _query(conn, f"select 1 from {sensor_csv.SOURCE_TABLE} limit 0", {})  # 503 before streaming starts
    # `to` is inclusive here (seed 000); the export's windows are half-open. The CSV streams on
    # its own connection: the request's one is released when the handler returns.
    chunks = sensor_csv.csv_chunks(start, end + timedelta(microseconds=1), device)
    name = f"sensorsdata_{start:%Y%m%d}_{end:%Y%m%d}.csv"
    return StreamingResponse(chunks, media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


class DevicePayload(BaseModel):
    """The device payload of seed 000."""

    devid: str = Field(min_length=1, max_length=128)
    ts: str = Field(description="time of the measure: ISO-8601 (with offset) or unix seconds")
    readings: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        min_length=7, max_length=7, description="iaq, temperature, humidity, pressure, voc, co2, iaq_accuracy")

    @field_validator("ts")
    @classmethod
    def ts_parses(cls, v: str) -> str:
        parse_device_ts(v)
        return v


def parse_device_ts(value: str) -> datetime:
    """A device timestamp as UTC; naive ISO times are taken as UTC. Raises ValueError with the reason."""
    text = value.strip()
    try:
        moment = datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"ts {value!r} is neither ISO-8601 nor unix seconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    except (OverflowError, OSError):
        raise ValueError(f"ts {value!r} is out of range") from None
    moment = moment.astimezone(UTC)
    if moment < EARLIEST or moment > datetime.now(UTC) + timedelta(days=1):
        raise ValueError(f"ts {value!r} is before 2000 or more than a day in the future")
    return moment


@app.put("/sensorsdata", status_code=201, summary="Store one device payload (lands in MongoDB)")
def put_sensorsdata(payload: DevicePayload, conn: Conn) -> dict:
    from pymongo.errors import DuplicateKeyError

    moment = parse_device_ts(payload.ts)
    doc_id = f"aq:{payload.devid}:{int(moment.timestamp())}"
    doc = {"_id": doc_id, "devid": payload.devid, "ts": payload.ts, "readings": payload.readings}
    collection = mongo_db(app.state.mongo)["air_quality"]
    try:
        collection.insert_one({**doc, "_ingested_at": datetime.now(UTC)})
    except DuplicateKeyError:
        existing = collection.find_one({"_id": doc_id}, {"_ingested_at": 0})
        if existing != doc:
            raise HTTPException(409, f"a different reading for device {payload.devid} at {moment.isoformat()} "
                                     "is already stored") from None
        return {"id": doc_id, "status": "already stored"}
    return {"id": doc_id, "status": "stored"}
