"""``GET /health``: can the API serve? No key needed (the local stack and compose probe it).

200 when PostgreSQL answers a query as the API's role and MongoDB answers a ping; 503 naming
what is down otherwise. PostgreSQL gets ``PROBE_TIMEOUT_SECONDS`` to connect; MongoDB as long as
the API's client waits for a server (5 s, api.app.lifespan). The reason given is the kind of
failure, never a host, port or credential (the endpoint is public).
"""

from __future__ import annotations

from typing import Literal

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from iot_core.connections import pg_conninfo

PROBE_TIMEOUT_SECONDS = 3

router = APIRouter()


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    postgres: str
    mongodb: str


def _postgres() -> str:
    try:
        with psycopg.connect(**pg_conninfo("api"), connect_timeout=PROBE_TIMEOUT_SECONDS, autocommit=True) as conn:
            conn.execute("select 1")
    except psycopg.Error as e:
        return f"unavailable ({type(e).__name__})"
    return "ok"


def _mongodb(client) -> str:
    try:
        client.admin.command("ping", maxTimeMS=PROBE_TIMEOUT_SECONDS * 1000)
    except Exception as e:  # noqa: BLE001 - any failure of the ping means "not serving"
        return f"unavailable ({type(e).__name__})"
    return "ok"


@router.get("/health", summary="Health: PostgreSQL and MongoDB reachable (no key needed)",
            response_model=Health, responses={503: {"model": Health, "description": "a database is unavailable"}})
def health(request: Request) -> JSONResponse:
    checks = {"postgres": _postgres(), "mongodb": _mongodb(request.state.mongo)}
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "unavailable", **checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
