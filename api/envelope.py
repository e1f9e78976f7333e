"""The seed-000 response envelope (Records / Metadata / ExecutionInfo) and NextToken handling.

A ``NextToken`` is ``<payload>.<signature>``: the payload (base64url JSON) is the position after
the last record and the number of pages consumed; the signature is an HMAC-SHA256 with
``API_TOKEN_SECRET`` over the payload *and the query it continues* (the path and every query
parameter but ``NextToken``). A token that was edited, made up, or issued for another query
(another device, window, measure or page size) is refused with a 400, so a client can neither
read past its own query nor make the API parse positions it never wrote.

The query a request continues is set by the request guard (:mod:`api.guard`) in a context
variable, so every endpoint, including routers of other modules, signs and checks tokens
without passing the request around.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from iot_core.settings import get_settings

SOURCE_NAME = "IoT ELT platform"
TOKEN_PARAM = "NextToken"

log = logging.getLogger(__name__)

# "<path>?<sorted query without NextToken>" of the request being served (set by api.guard)
current_query: ContextVar[str] = ContextVar("current_query", default="")


class BadToken(ValueError):
    pass


def query_binding(path: str, params: list[tuple[str, str]]) -> str:
    """The canonical form of a query that a token is bound to: its path and sorted parameters."""
    kept = sorted((k, v) for k, v in params if k != TOKEN_PARAM)
    return path + "?" + json.dumps(kept, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=1)
def _secret() -> bytes:
    configured = get_settings().api_token_secret.get_secret_value()
    if configured:
        return configured.encode()
    # tokens then hold only within this process: paging across API workers or restarts fails
    log.warning("API_TOKEN_SECRET is empty: NextTokens are signed with a per-process random key")
    return secrets.token_bytes(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _query_tag(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()[:16]


def _signature(payload: str, binding: str) -> str:
    return _b64(hmac.new(_secret(), f"{payload}|{binding}".encode(), hashlib.sha256).digest())


def encode_token(position: dict[str, Any]) -> str:
    binding = current_query.get()
    payload = _b64(json.dumps({**position, "q": _query_tag(binding)}, separators=(",", ":")).encode())
    return f"{payload}.{_signature(payload, binding)}"


def decode_token(token: str | None) -> dict[str, Any] | None:
    """The position a token holds, or None without a token; BadToken when it is not ours for this query."""
    if not token:
        return None
    binding = current_query.get()
    payload, _, signature = token.partition(".")
    try:
        value = json.loads(_unb64(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise BadToken("NextToken is not a token this API issued")
    if value.get("q") != _query_tag(binding):
        raise BadToken("NextToken was issued for another query: keep the endpoint and every parameter "
                       "(device, from, to, measure, limit) of the first page")
    if not hmac.compare_digest(signature.encode(), _signature(payload, binding).encode()):
        raise BadToken("NextToken is not a token this API issued")
    value.pop("q")
    return value


def envelope(records: list[list], columns: list[str], types: list[str], source_type: str,
             source_format: str = "Timeserie", pages_consumed: int = 1,
             next_position: dict[str, Any] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"LastQueryId": str(uuid.uuid4()), "NextTokenConsumed": pages_consumed}
    if next_position is not None:
        info[TOKEN_PARAM] = encode_token({**next_position, "n": pages_consumed})
    return {
        "Records": records,
        "Metadata": {
            "SourceName": SOURCE_NAME,
            "SourceType": source_type,
            "SourceFormat": source_format,
            "ColumnName": columns,
            "ColumnType": types,
        },
        "ExecutionInfo": info,
    }
