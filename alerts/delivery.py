"""Delivery of the outbox (``ops.alert_notifications``) to the webhook receivers.

Each state change of an alert is written to the outbox in the same transaction as the change, one
row per receiver (unique per alert, transition and receiver), so it is queued exactly once however
often an evaluation re-runs or crashes. Delivery then works row by row:

1. *claim* (own transaction): ``attempts + 1`` and ``next_attempt_at`` moved out by a lease (the
   HTTP timeout + 1 s), committed before anything is sent, so a delivery process that dies
   (SIGKILL, OOM, a lost worker) leaves the row to be retried when the lease ends instead of
   lost or sent twice in parallel;
2. POST the stored payload (the same bytes on every attempt) with its ``Idempotency-Key``;
3. a 2xx marks it delivered; anything else records the status and error and schedules the next
   try after the back-off (``ALERT_DELIVERY_BACKOFF_SECONDS``, doubled per try, at most
   ``ALERT_DELIVERY_BACKOFF_MAX_SECONDS``); after ``ALERT_DELIVERY_ATTEMPTS`` tries the row is
   marked failed (kept, with its last error).

A receiver sees each notification once unless a delivery is cut off after the receiver took it
and before step 3 commits: then it is sent again with the same key, which the receiver uses to
drop the repeat (Alertmanager itself merges a repeated alert with the same labels). Notifications
of one alert reach one receiver in order: a resolution waits until its firing was delivered or
given up.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receiver:
    name: str
    url: str


def receivers(settings: Settings | None = None) -> list[Receiver]:
    """The webhook receivers of ``ALERT_WEBHOOKS``: comma-separated ``name=url`` or ``url``."""
    s = settings or get_settings()
    out: list[Receiver] = []
    for entry in (e.strip() for e in s.alert_webhooks.split(",")):
        if not entry:
            continue
        name, sep, url = entry.partition("=")
        if not sep or name.startswith(("http://", "https://")):
            name, url = "", entry
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ALERT_WEBHOOKS: {entry!r} is not an http(s) URL")
        out.append(Receiver(name.strip() or f"{parts.hostname}:{parts.port or ''}{parts.path}".rstrip(":"), url))
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise ValueError(f"ALERT_WEBHOOKS: receiver names must be unique, got {names}")
    return out


def external_url(settings: Settings | None = None) -> str:
    s = settings or get_settings()
    return s.alert_external_url or f"http://127.0.0.1:{s.api_port}"


def backoff_seconds(attempt: int, settings: Settings | None = None) -> float:
    """Wait after the ``attempt``-th try: the base doubled per try, at most the maximum."""
    s = settings or get_settings()
    return min(s.alert_delivery_backoff_seconds * 2 ** max(attempt - 1, 0), s.alert_delivery_backoff_max_seconds)


def post(url: str, body, key: str, timeout: float) -> int:
    """POST JSON; returns the HTTP status (raises OSError on a connection failure)."""
    data = json.dumps(body, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "iot-elt-platform-alerts/1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked above
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


_CLAIM = """
update ops.alert_notifications n
set attempts = n.attempts + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => %(lease)s)
where n.id = (
    select o.id from ops.alert_notifications o
    where o.delivered_at is null and o.failed_at is null and o.next_attempt_at <= now()
      and not exists (select 1 from ops.alert_notifications e
                      where e.alert_id = o.alert_id and e.receiver = o.receiver and e.id < o.id
                        and e.delivered_at is null and e.failed_at is null)
    order by o.next_attempt_at, o.id
    limit 1
    for update skip locked)
returning n.id, n.receiver, n.idempotency_key, n.payload, n.attempts
"""


def deliver_due(settings: Settings | None = None, max_seconds: float = 60.0, max_messages: int | None = None) -> dict:
    """Send every notification that is due, for at most ``max_seconds``; returns counts.

    Rows of receivers no longer in ``ALERT_WEBHOOKS`` are marked failed with that reason."""
    s = settings or get_settings()
    by_name = {r.name: r for r in receivers(s)}
    counts = {"delivered": 0, "retry_later": 0, "failed": 0}
    deadline = time.monotonic() + max_seconds
    with pg_connect("transformer", settings=s, autocommit=True) as conn:
        if conn.execute("select to_regclass('ops.alert_notifications')").fetchone()[0] is None:
            return counts
        while time.monotonic() < deadline and (max_messages is None or sum(counts.values()) < max_messages):
            # the claim is a lease a little longer than one POST may take: no second deliverer picks
            # the row up while this one still waits for the receiver, and a killed one's row is
            # due again right after it
            row = conn.execute(_CLAIM, {"lease": s.alert_delivery_timeout_seconds + 1}).fetchone()
            if row is None:
                break
            nid, name, key, body, attempts = row
            receiver = by_name.get(name)
            status, error = None, None
            if receiver is None:
                error = f"receiver {name!r} is no longer in ALERT_WEBHOOKS"
                attempts = s.alert_delivery_attempts
            else:
                try:
                    status = post(receiver.url, body, key, s.alert_delivery_timeout_seconds)
                    if not 200 <= status < 300:
                        error = f"HTTP {status}"
                except OSError as e:
                    error = f"{type(e).__name__}: {e}"[:500]
            if error is None:
                conn.execute("update ops.alert_notifications set delivered_at = now(), last_status = %s,"
                             " last_error = null where id = %s", (status, nid))
                counts["delivered"] += 1
            elif attempts >= s.alert_delivery_attempts:
                conn.execute("update ops.alert_notifications set failed_at = now(), last_status = %s,"
                             " last_error = %s where id = %s", (status, error, nid))
                counts["failed"] += 1
                log.error("alert notification %s to %s given up after %d attempts: %s", nid, name, attempts, error)
            else:
                conn.execute("update ops.alert_notifications set last_status = %s, last_error = %s,"
                             " next_attempt_at = now() + make_interval(secs => %s) where id = %s",
                             (status, error, backoff_seconds(attempts, s), nid))
                counts["retry_later"] += 1
                log.warning("alert notification %s to %s failed (attempt %d): %s; retrying after %.0f s",
                            nid, name, attempts, error, backoff_seconds(attempts, s))
    return counts


def send_sample(settings: Settings | None = None) -> dict[str, str]:
    """POST a synthetic test alert to every receiver now (not through the outbox); name -> result."""
    from alerts.notify import sample_payload

    s = settings or get_settings()
    out = {}
    for r in receivers(s):
        body = sample_payload(r.name, r.url, external_url(s))
        try:
            status = post(r.url, body, f"iot-alert-test-{int(time.time())}", s.alert_delivery_timeout_seconds)
            out[r.name] = f"HTTP {status}" + ("" if 200 <= status < 300 else " (not accepted)")
        except OSError as e:
            out[r.name] = f"failed: {type(e).__name__}: {e}"
    return out
