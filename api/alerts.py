"""``GET /alerts``: open alerts and their history (docs/alerts.md), in the seed-000 envelope.

A router of its own, registered by ``api.app`` (import the app, not this module, first); it uses
the app's key check and helpers, so the rules for ``x-api-key``, timestamps and ``NextToken`` are
the same as on every other endpoint.
"""

from __future__ import annotations

from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Query

from alerts.store import list_alerts
from api.app import Conn, LimitQ, TokenQ, _epoch, _position
from api.envelope import envelope

router = APIRouter()

COLUMNS = ["id", "rule_id", "deviceId", "severity", "state", "started_at", "fired_at", "resolved_at", "value",
           "limit", "lead_minutes", "predicted_at", "message", "acked_at", "acked_by"]
TYPES = ["int", "str", "str", "str", "str", "timestamp", "timestamp", "timestamp", "float", "float", "float",
         "timestamp", "str", "timestamp", "str"]


def _iso(ts):
    return ts.isoformat() if ts is not None else None


@router.get("/alerts", summary="Alerts: open ones, or their history (newest first)")
def get_alerts(
    conn: Conn,
    state: Annotated[Literal["open", "firing", "pending", "resolved", "all"],
                     Query(description="open = pending or firing")] = "open",
    device: Annotated[str | None, Query(min_length=1, description="device id")] = None,
    rule: Annotated[str | None, Query(min_length=1, description="rule id")] = None,
    from_: Annotated[float | None, Query(alias="from", description="started at or after, unix seconds")] = None,
    to: Annotated[float | None, Query(description="started at or before, unix seconds")] = None,
    limit: LimitQ = 100,
    next_token: TokenQ = None,
) -> dict:
    since = _epoch(from_, "from") if from_ is not None else None
    until = _epoch(to, "to") if to is not None else None
    if since and until and until < since:
        raise HTTPException(400, "'to' must not be before 'from'")
    pos = _position(next_token)
    try:
        rows = list_alerts(conn, state, device, rule, since, until, limit=limit + 1, after_id=pos.get("id"))
    except psycopg.errors.UndefinedTable as e:
        raise HTTPException(503, "no alerts yet: the alert tables do not exist (the iot_alerts DAG creates "
                                 "them on its first run)") from e
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = {"id": rows[-1]["id"]}
    records = [[a["id"], a["rule_id"], a["device_id"], a["severity"], a["state"], _iso(a["started_at"]),
                _iso(a["fired_at"]), _iso(a["resolved_at"]), a["value"], a["limit"], a["lead_minutes"],
                _iso(a["predicted_at"]), a["message"], _iso(a["acked_at"]), a["acked_by"]] for a in rows]
    return envelope(records, COLUMNS, TYPES, "Alerts", "Tabular", pages_consumed=int(pos.get("n", 0)) + 1,
                    next_position=nxt)
