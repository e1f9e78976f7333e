"""Reading and acknowledging alerts (``iot alerts list | ack``, ``GET /alerts``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

STATES = {
    "open": ("pending", "firing"),
    "firing": ("firing",),
    "pending": ("pending",),
    "resolved": ("resolved",),
    "all": ("pending", "firing", "resolved"),
}
COLUMNS = ("id", "rule_id", "device_id", "severity", "state", "started_at", "fired_at", "resolved_at", "value",
           "limit", "lead_minutes", "predicted_at", "message", "acked_at", "acked_by", "labels")


def list_alerts(conn, state: str = "open", device: str | None = None, rule: str | None = None,
                since: datetime | None = None, until: datetime | None = None, limit: int = 100,
                after_id: int | None = None, fired_only: bool = False) -> list[dict[str, Any]]:
    """Alerts newest first (by id), optionally after the id of the last one of a previous page.
    ``since`` / ``until`` bound ``started_at``; ``fired_only`` leaves out alerts cleared before firing."""
    if state not in STATES:
        raise ValueError(f"state must be one of {sorted(STATES)}, got {state!r}")
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    rows = conn.execute(
        f"select {cols} from ops.alert_events"
        " where state = any(%(states)s)"
        "   and (%(device)s::text is null or device_id = %(device)s)"
        "   and (%(rule)s::text is null or rule_id = %(rule)s)"
        "   and (%(since)s::timestamptz is null or started_at >= %(since)s)"
        "   and (%(until)s::timestamptz is null or started_at <= %(until)s)"
        "   and (%(after)s::bigint is null or id < %(after)s)"
        "   and (not %(fired_only)s or fired_at is not null)"
        " order by id desc limit %(limit)s",
        {"states": list(STATES[state]), "device": device, "rule": rule, "since": since, "until": until,
         "after": after_id, "limit": limit, "fired_only": fired_only}).fetchall()
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


def acknowledge(conn, alert_ids: list[int], by: str, note: str | None = None) -> list[tuple[int, str]]:
    """Mark alerts as acknowledged (who and when; the first acknowledgement is kept).
    Returns (id, state) of each alert found; unknown ids are left out."""
    rows = conn.execute(
        "update ops.alert_events set acked_at = coalesce(acked_at, now()), acked_by = coalesce(acked_by, %s),"
        " ack_note = coalesce(%s, ack_note), updated_at = now() where id = any(%s) returning id, state",
        (by, note, alert_ids)).fetchall()
    return sorted(rows)
