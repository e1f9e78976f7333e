"""What every request passes before FastAPI reads its body (issue 17): a pure ASGI middleware.

In this order, each check cheaper than the next and none reading the body:

1. a control character (NUL, CR, ...) in the path or in any query parameter name or value: 400.
   PostgreSQL refuses NUL in text, and a parameter holding one is never legitimate;
2. a ``Content-Length`` above ``API_MAX_BODY_BYTES``: 413 at once; a body sent without a length
   (chunked) is counted while it is read and refused with 413 when it passes the limit, so
   neither reading nor JSON parsing ever handles more than the limit (parsing a bounded body on
   the event loop takes microseconds);
3. ``x-api-key`` on every path but the public ones (health and API docs): missing 401, unknown or
   revoked 403, the warehouse unreachable 503. FastAPI reads and parses a body *before* it
   resolves dependencies, so a key check in a dependency would come too late.

The PostgreSQL connection opened for the key check is handed to the endpoint
(``request.state.pg``, see ``api.app.db``), so a request opens one connection, not two. The
request's query (path and parameters but ``NextToken``) is put in
:data:`api.envelope.current_query`, to which every ``NextToken`` is bound.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qsl

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import keys
from api.envelope import current_query, query_binding
from iot_core.connections import pg_connect
from iot_core.settings import get_settings

log = logging.getLogger(__name__)

KEY_HEADER = "x-api-key"
DOCS_ASSETS = "/docs-assets"
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
# C0 and C1 control characters, DEL included (tab, CR and LF too: none belongs in a parameter)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
RETRY_AFTER_SECONDS = 5


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(DOCS_ASSETS + "/")


def control_character_problem(path: str, params: list[tuple[str, str]]) -> str | None:
    """Why the request is refused for a control character, or None."""
    if CONTROL_CHARACTERS.search(path):
        return "the path contains a control character"
    for name, value in params:
        if CONTROL_CHARACTERS.search(name):
            return f"a query parameter name ({name!r}) contains a control character"
        if CONTROL_CHARACTERS.search(value):
            return f"query parameter {name!r} contains a control character (NUL, CR, LF, tab, ...)"
    return None


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes (API_MAX_BODY_BYTES)")


async def reply(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _open_checked_connection(key: str) -> tuple[psycopg.Connection, bool]:
    conn = pg_connect("api", autocommit=True)
    try:
        return conn, keys.is_valid(key, conn)
    except BaseException:
        conn.close()
        raise


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes if max_body_bytes is not None else get_settings().api_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        problem = control_character_problem(path, params)
        if problem:
            await reply(send, 400, problem)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await reply(send, 400, "Content-Length is not a number")
                return
            if int(length) > limit:
                await reply(send, 413, BodyTooLarge(limit).detail)
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        binding = current_query.set(query_binding(path, params))
        try:
            if is_public(path):
                await self.app(scope, limited_receive, send)
                return
            key = headers.get(KEY_HEADER)
            if not key:
                await reply(send, 401, f"missing {KEY_HEADER} header")
                return
            try:
                conn, valid = await run_in_threadpool(_open_checked_connection, key)
            except psycopg.OperationalError as e:
                log.warning("API key check: PostgreSQL unavailable: %s", e)
                await reply(send, 503, "PostgreSQL is unavailable: the key cannot be checked; retry later",
                            {"retry-after": str(RETRY_AFTER_SECONDS)})
                return
            try:
                if not valid:
                    await reply(send, 403, "invalid or revoked API key")
                    return
                state = scope.setdefault("state", {})
                state["pg"] = conn
                state["api_key_checked"] = True
                await self.app(scope, limited_receive, send)
            finally:
                await run_in_threadpool(conn.close)
        finally:
            current_query.reset(binding)
