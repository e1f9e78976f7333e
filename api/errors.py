"""Error answers of the API: one JSON shape, 503 (never 500) while a database is away, and the
OpenAPI document listing every answer an endpoint can give.

A database that cannot be reached is the client's "try again later", not a server bug: a
PostgreSQL connection or query failing for that reason (``psycopg.OperationalError``: refused,
reset, shut down, cancelled) and MongoDB unreachable (``pymongo.errors.ConnectionFailure``:
no server selected in time, connection lost, not primary) answer 503 with the reason and a
``Retry-After`` header. The details (hosts, ports) go to the log, not to the client.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure

from api.guard import RETRY_AFTER_SECONDS, is_public

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every error answer but 422: ``detail`` says what was wrong."""

    detail: str


def _json_safe(value):
    """Validation errors echo the input; NaN/Infinity or a lone surrogate (JSON allows "\ud800")
    would make that response itself fail with a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def unavailable(detail: str) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": detail},
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})


async def postgres_unavailable(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
    log.warning("%s %s: PostgreSQL unavailable: %s", request.method, request.url.path, exc)
    return unavailable("PostgreSQL (the warehouse) is unavailable; retry later")


async def warehouse_not_built(request: Request, exc: psycopg.errors.UndefinedTable) -> JSONResponse:
    return unavailable(f"the warehouse is not built yet ({exc.diag.message_primary}); run the extract and "
                       "transform DAGs first")


async def mongodb_unavailable(request: Request, exc: ConnectionFailure) -> JSONResponse:
    log.warning("%s %s: MongoDB unavailable: %s", request.method, request.url.path, exc)
    return unavailable("MongoDB (the landing store) is unavailable; retry later")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(psycopg.errors.UndefinedTable, warehouse_not_built)
    app.add_exception_handler(psycopg.OperationalError, postgres_unavailable)
    app.add_exception_handler(ConnectionFailure, mongodb_unavailable)


def error_response(description: str) -> dict[str, Any]:
    # routes are documented after they were built, when FastAPI no longer turns a `model` into a
    # schema: the schema is written out here
    return {"description": description,
            "content": {"application/json": {"schema": ErrorBody.model_json_schema()}}}


COMMON_RESPONSES: dict[int, dict[str, Any]] = {
    400: error_response("bad parameter: a control character (NUL, CR, ...) in a parameter, an impossible time window, "
                "a NextToken that this API did not issue for this query"),
    413: error_response("request body larger than API_MAX_BODY_BYTES; refused before it is read"),
    503: error_response("PostgreSQL or MongoDB is unavailable, or the warehouse is not built yet; retry later "
                "(Retry-After header)"),
}
KEY_RESPONSES: dict[int, dict[str, Any]] = {
    401: error_response("no x-api-key header"),
    403: error_response("the x-api-key is unknown or revoked"),
}


def document_responses(app: FastAPI) -> None:
    """Add the answers every endpoint can give to its OpenAPI entry (what an endpoint documents
    itself wins). Call after every route is registered; routers of other modules included."""
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = dict(COMMON_RESPONSES)
        if not is_public(route.path):
            extra.update(KEY_RESPONSES)
        for status, spec in extra.items():
            if status not in route.responses and str(status) not in route.responses:
                route.responses[status] = spec
    app.openapi_schema = None  # rebuilt on the next request of /openapi.json
