"""Test data helpers of the forecasting tests: a synthetic, forecastable IAQ series and resets of
``stage.iaq_minutely`` (a plain table per docs/contracts.md §3, so the tests do not depend on dbt)
and of the ml tables."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from iot_core.connections import pg_connect


def synthetic_iaq(devices: int, minutes: int, end: datetime, seed: int = 0) -> list[tuple]:
    """Forecastable IAQ: a daily cycle, a 90-minute oscillation with a device-specific phase and
    AR(1) noise, so learnt models can beat persistence."""
    rng = np.random.default_rng(seed)
    t = np.arange(minutes)
    rows = []
    start = end - timedelta(minutes=minutes - 1)
    for d in range(devices):
        noise = np.zeros(minutes)
        eps = rng.normal(0, 1.5, minutes)
        for i in range(1, minutes):
            noise[i] = 0.8 * noise[i - 1] + eps[i]
        iaq = (100 + 10 * d + 25 * np.sin(2 * np.pi * (t + 17 * d) / 90)
               + 15 * np.sin(2 * np.pi * t / 1440) + noise)
        rows += [(start + timedelta(minutes=int(i)), f"aq-{d:03d}", float(v), False) for i, v in zip(t, iaq, strict=True)]
    return rows


def sparse_iaq(device: str, minutes: int, end: datetime, every: tuple[int, ...] = (5, 10, 15), seed: int = 1
               ) -> list[tuple]:
    """A sensor that reports every 5-15 minutes (like a LoRaWAN CO2 sensor): readings only, no
    filled-in minutes (stage interpolates gaps of at most 5 minutes; longer ones stay empty)."""
    rng = np.random.default_rng(seed)
    back, t = [], 0                       # minutes before `end`: the newest reading is at `end`
    while t < minutes:
        back.append(t)
        t += int(rng.choice(every))
    return [(end - timedelta(minutes=b), device,
             float(420 + 40 * np.sin((minutes - b) / 90) + rng.normal(0, 2)), False) for b in reversed(back)]


def reset_iaq_minutely(rows: list[tuple]) -> None:
    """Replace ``stage.iaq_minutely`` by ``rows`` (time, device_id, iaq, is_interpolated)."""
    with pg_connect("transformer") as conn, conn.cursor() as cur:
        cur.execute("select table_type from information_schema.tables"
                    " where table_schema = 'stage' and table_name = 'iaq_minutely'")
        kind = cur.fetchone()
        if kind and kind[0] == "VIEW":
            cur.execute("drop view stage.iaq_minutely cascade")
        cur.execute("create table if not exists stage.iaq_minutely (time timestamptz not null,"
                    " device_id text not null, iaq double precision, is_interpolated boolean not null default false,"
                    " primary key (device_id, time))")
        cur.execute("truncate stage.iaq_minutely")
        with cur.copy("copy stage.iaq_minutely (time, device_id, iaq, is_interpolated) from stdin") as copy:
            for row in rows:
                copy.write_row(row)


def add_iaq_minutely(rows: list[tuple]) -> None:
    """Readings arriving late (a lagging device catching up)."""
    with pg_connect("transformer") as conn, conn.cursor() as cur, \
            cur.copy("copy stage.iaq_minutely (time, device_id, iaq, is_interpolated) from stdin") as copy:
        for row in rows:
            copy.write_row(row)


def reset_ml_tables() -> None:
    from ml.schema import ensure_schema

    with pg_connect("transformer") as conn:
        ensure_schema(conn)
        conn.execute("truncate ml.predictions, ml.model_candidates, ml.model_selections, ml.forecast_runs,"
                     " ml.arm_forecasts, ml.arm_scores")
        conn.commit()
