"""Helpers of the alert tests (a uniquely named module: tests/alerts is not a package)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from iot_core.connections import pg_connect

ALERTS_DB = "iot_warehouse_alerts_test"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)   # the scenarios' first minute


@dataclass(frozen=True)
class Device:
    id: str
    kind: str = "air_quality"
    building: str | None = "hq"
    floor: str | None = "1"
    room: str | None = "101"
    active: bool = True


FLEET = (
    Device("aq-1"), Device("aq-2"), Device("aq-3"), Device("aq-4"),
    Device("aq-f2", floor="2", room="201"),
    Device("aq-lab", building="lab", floor="0", room="clean-room"),
    Device("aq-old", active=False),
    Device("watch-1", kind="watch", building=None, floor=None, room=None),
)


def load_raw_fixture():
    """tests/dbt_project/raw_fixture.py (the raw tables of docs/contracts.md §2), by path."""
    path = Path(__file__).resolve().parent.parent / "dbt_project" / "raw_fixture.py"
    spec = importlib.util.spec_from_file_location("alerts_raw_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def write_readings(settings, device: str, measure: str, points, start: datetime = T0, ingest_delay_s: float = 20):
    """points: (minute offset from ``start``, value); each reading is ingested ``ingest_delay_s`` after it."""
    with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
        for offset, value in points:
            t = start + minutes(offset)
            cur.execute("insert into stage.stg_sensor_readings (time, device_id, measure_name, value, _ingested_at)"
                        " values (%s, %s, %s, %s, %s) on conflict (device_id, measure_name, time)"
                        " do update set value = excluded.value, _ingested_at = excluded._ingested_at",
                        (t, device, measure, value, t + timedelta(seconds=ingest_delay_s)))
        conn.commit()


def write_forecast(settings, device: str, issued_at: datetime, values, measure: str = "iaq", model="ridge"):
    """One forecast issue: values[h-1] predicted for issued_at + h minutes."""
    with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
        for h, v in enumerate(values, start=1):
            cur.execute("insert into ml.predictions (time, device_id, measure_name, value, model_name, model_version,"
                        " issued_at) values (%s, %s, %s, %s, %s, '1', %s)",
                        (issued_at + minutes(h), device, f"{measure}~{h}", v, model, issued_at))
        conn.commit()


def query(settings, sql: str, *args):
    with pg_connect("transformer", settings=settings) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def alerts(settings, rule_id: str | None = None):
    """(device_id, state, started_at, fired_at, resolved_at, value) per alert, oldest first."""
    return query(settings, "select device_id, state, started_at, fired_at, resolved_at, value from ops.alert_events"
                           " where %s::text is null or rule_id = %s order by started_at, id", rule_id, rule_id)


class Receiver:
    """A webhook receiver on a local port that records every POST (path, Idempotency-Key, JSON body).

    ``fail_next`` answers that many requests with HTTP 500; ``hold`` keeps the next request waiting
    (after it was read in full) until ``release`` is set, to cut a delivery off half-way."""

    def __init__(self):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict] = []
        self.fail_next = 0
        self.hold = False
        self.got_held = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append({"path": self.path, "key": self.headers.get("Idempotency-Key"),
                                          "body": body})
                if receiver.hold:
                    receiver.hold = False
                    receiver.got_held.set()
                    receiver.release.wait(30)
                status = 200
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    status = 500
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def keys(self) -> list[str]:
        """Idempotency keys in arrival order, repeats dropped (what a deduplicating receiver keeps)."""
        return list(dict.fromkeys(r["key"] for r in self.requests))

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
