"""The seed-000 response envelope (Records / Metadata / ExecutionInfo) and NextToken handling."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

SOURCE_NAME = "IoT ELT platform"


class BadToken(ValueError):
    pass


def encode_token(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def decode_token(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, json.JSONDecodeError) as e:
        raise BadToken("NextToken is not a token this API issued") from e
    if not isinstance(value, dict):
        raise BadToken("NextToken is not a token this API issued")
    return value


def envelope(records: list[list], columns: list[str], types: list[str], source_type: str,
             source_format: str = "Timeserie", pages_consumed: int = 1,
             next_position: dict[str, Any] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"LastQueryId": str(uuid.uuid4()), "NextTokenConsumed": pages_consumed}
    if next_position is not None:
        info["NextToken"] = encode_token({**next_position, "n": pages_consumed})
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
