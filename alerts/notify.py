"""Alert messages and notification payloads (Alertmanager-compatible JSON).

Two formats, chosen per receiver by its URL:

* a URL ending in ``/api/v2/alerts`` is a Prometheus Alertmanager: the body is its API's list of
  alerts (``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``). A firing alert
  is sent once, so its ``endsAt`` is left far in the future (Alertmanager would otherwise resolve
  it after its ``resolve_timeout``); the resolved notification sets the real ``endsAt``.
* any other URL gets the body Alertmanager itself posts to webhook receivers (``version`` "4",
  ``groupKey``, ``status``, ``alerts`` ...), so any receiver written for Alertmanager works.

Each notification carries an idempotency key (header ``Idempotency-Key`` and the annotation
``notification_id``): a receiver that keeps the keys it has seen gets each state change exactly
once, even when a delivery was cut off after the receiver had it (docs/alerts.md, Delivery).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.rules import Rule, format_duration

FAR_FUTURE = datetime(2999, 12, 31, tzinfo=UTC)
ZERO_TIME = "0001-01-01T00:00:00Z"
ALERTMANAGER_API_SUFFIX = "/api/v2/alerts"


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:.4g}" if abs(x) < 1e6 else f"{x:.0f}"


def _at(ts: datetime | None) -> str:
    return f"{ts:%Y-%m-%d %H:%M} UTC" if ts else "?"


def where(device: dict) -> str:
    parts = [str(device[k]) if k == "building" else f"{k} {device[k]}"
             for k in ("building", "floor", "room") if device.get(k) not in (None, "")]
    return f" ({', '.join(parts)})" if parts else ""


def message(rule: Rule, alert: dict, unit: str, device: dict) -> str:
    """One line a person on call understands without opening the rule file."""
    unit = f" {unit}" if unit else ""
    dev = f"{alert['device_id']}{where(device)}"
    state = alert["state"]
    value, limit = alert.get("value"), rule.limit
    m = rule.measure or "any measure"
    if rule.kind == "threshold":
        text = f"{m} {_num(value)}{unit}, {rule.direction} {_num(limit)}{unit}"
        text += f" for {format_duration(rule.for_s)}" if rule.for_s else ""
    elif rule.kind == "rate":
        text = (f"{m} changing {_num(value)}{unit}/min, {rule.direction} {_num(limit)}{unit}/min"
                f" over {format_duration(rule.over_s)}")
    elif rule.kind == "anomaly":
        text = (f"{m} {_num(value)}{unit} is {_num(alert.get('detail'))} robust z from its "
                f"{format_duration(rule.window_s)} median (limit {_num(limit)})")
    elif rule.kind == "no_data":
        last = alert.get("last_reading_at")
        text = f"silent for {_num(value)} min, limit {format_duration(rule.for_s)} (newest reading {_at(last)})"
    else:  # forecast
        text = (f"{m} predicted {rule.direction} {_num(limit)}{unit} in {_num(alert.get('lead_minutes'))} min"
                f" (at {_at(alert.get('predicted_at'))}; predicted {_num(value)}{unit})")
    if state == "pending":
        return f"pending: {text} on {dev} since {_at(alert['started_at'])}"
    if state == "resolved":
        how = alert.get("resolution") or f"back to {_num(alert.get('last_value'))}{unit}"
        if alert.get("fired_at") is None:
            return f"cleared before firing: {text} on {dev}; {how}"
        return f"resolved: {text} on {dev}; {how} at {_at(alert.get('resolved_at'))}"
    return f"{text} on {dev}"


def labels(rule: Rule, device_id: str, device: dict) -> dict[str, str]:
    out = {"alertname": rule.id, "rule_id": rule.id, "device_id": device_id, "severity": rule.severity,
           "kind": rule.kind}
    if rule.measure:
        out["measure"] = rule.measure
    for key in ("building", "floor", "room"):
        if device.get(key) not in (None, ""):
            out[key] = str(device[key])
    out.update(dict(rule.labels))
    return out


def fingerprint(label_set: dict[str, str]) -> str:
    text = "\xff".join(f"{k}\xff{v}" for k, v in sorted(label_set.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def idempotency_key(alert_id: int, transition: str, receiver: str) -> str:
    return f"iot-alert-{alert_id}-{transition}-{hashlib.sha256(receiver.encode()).hexdigest()[:8]}"


def _iso(ts: datetime | None) -> str:
    if ts is None:
        return ZERO_TIME
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def annotations(rule: Rule, alert: dict, key: str) -> dict[str, str]:
    out = {"summary": alert["message"], "value": _num(alert.get("value")), "limit": _num(rule.limit),
           "started_at": _iso(alert["started_at"]), "alert_id": str(alert["id"]), "notification_id": key}
    if rule.description:
        out["description"] = rule.description
    if alert.get("lead_minutes") is not None:
        out["lead_minutes"] = _num(alert["lead_minutes"])
        out["predicted_at"] = _iso(alert.get("predicted_at"))
    return out


def payload(rule: Rule, alert: dict, transition: str, receiver: str, url: str, external_url: str) -> Any:
    """The body of the notification of ``transition`` ('firing' / 'resolved') of ``alert`` (the
    alert as it was at that transition) for one receiver."""
    key = idempotency_key(alert["id"], transition, receiver)
    generator = f"{external_url.rstrip('/')}/alerts?rule={rule.id}&device={alert['device_id']}"
    label_set = alert["labels"]
    resolved = transition == "resolved"
    if url.rstrip("/").endswith(ALERTMANAGER_API_SUFFIX):
        return [{"labels": label_set, "annotations": annotations(rule, alert, key),
                 "startsAt": _iso(alert["fired_at"]),
                 "endsAt": _iso(alert["resolved_at"] if resolved else FAR_FUTURE),
                 "generatorURL": generator}]
    one = {"status": transition, "labels": label_set, "annotations": annotations(rule, alert, key),
           "startsAt": _iso(alert["fired_at"]), "endsAt": _iso(alert["resolved_at"]) if resolved else ZERO_TIME,
           "generatorURL": generator, "fingerprint": fingerprint(label_set)}
    group = {"alertname": rule.id, "device_id": alert["device_id"]}
    return {
        "version": "4",
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
        "status": transition,
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": label_set,
        "commonAnnotations": one["annotations"],
        "externalURL": external_url,
        "alerts": [one],
    }


def sample_payload(receiver: str, url: str, external_url: str, now: datetime | None = None) -> Any:
    """A synthetic firing alert for ``iot alerts test`` (labelled alertname=iot-alerts-test)."""
    now = now or datetime.now(UTC)
    label_set = {"alertname": "iot-alerts-test", "severity": "info", "device_id": "test"}
    key = f"iot-alert-test-{int(now.timestamp())}"
    ann = {"summary": "test notification from `iot alerts test`", "notification_id": key}
    if url.rstrip("/").endswith(ALERTMANAGER_API_SUFFIX):
        return [{"labels": label_set, "annotations": ann, "startsAt": _iso(now),
                 "endsAt": _iso(now + timedelta(minutes=5)), "generatorURL": external_url}]
    one = {"status": "firing", "labels": label_set, "annotations": ann, "startsAt": _iso(now), "endsAt": ZERO_TIME,
           "generatorURL": external_url, "fingerprint": fingerprint(label_set)}
    return {"version": "4", "groupKey": '{}:{alertname="iot-alerts-test"}', "truncatedAlerts": 0, "status": "firing",
            "receiver": receiver, "groupLabels": {"alertname": "iot-alerts-test"}, "commonLabels": label_set,
            "commonAnnotations": ann, "externalURL": external_url, "alerts": [one]}
