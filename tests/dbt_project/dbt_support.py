"""Helpers of the dbt tests (a uniquely named module: `conftest` is ambiguous across test folders)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from raw_fixture import RawWriter, create_ml_predictions, create_raw_tables

from iot_core.connections import pg_connect

# cosmos would try to send usage metrics (no network here; each try waits for a DNS failure)
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")

TEST_DB = "iot_warehouse_dbt_test"
DAY = datetime(2026, 11, 20, tzinfo=UTC)          # the scenario's main day (UTC)
FIRST_LOAD_AT = DAY + timedelta(days=1, hours=6)  # when the first increment was ingested


def fresh_warehouse(settings) -> None:
    """Empty raw tables and no dbt-built relations (a first run); schemas and grants as the init
    SQL makes them (warehouse/init/02, run again)."""
    from iot_cli.localstack.postgres import INIT_SQL_DIR, cluster_for, init_sql_variables

    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        for schema in ("stage", "agg", "curated"):
            conn.execute(f"drop schema if exists {schema} cascade")
        conn.execute("drop table if exists ops.data_quality_results, ops.dq_quarantine, ops.erasures cascade")
    cluster = cluster_for(settings)
    for sql_file in sorted(INIT_SQL_DIR.glob("[0-9][0-9]_*.sql")):  # the warehouse's files: all but 01
        if not sql_file.name.startswith("01_"):
            cluster.psql_file(sql_file, settings.warehouse_db, init_sql_variables(settings))
    with pg_connect("loader", settings=settings) as conn:
        create_raw_tables(conn, drop=True)
    with pg_connect("transformer", settings=settings) as conn:
        create_ml_predictions(conn)


def load_scenario(settings) -> None:
    """A small world with every case the stage checks, aggregates and consent rules must handle."""
    at = FIRST_LOAD_AT
    with pg_connect("loader", settings=settings) as conn:
        w = RawWriter(conn, load_id="load-1")
        # users: consenting from DAY 12:00; never consenting; consenting since before the data
        w.user("u_consent", 30, ["w1"], at, research_asof=DAY + timedelta(hours=12))
        w.user("u_never", 52, ["w2"], at, research_asof=None, gender="male")
        w.user("u_early", 21, ["w3"], at, research_asof=DAY - timedelta(days=1))
        w.device("w1", "watch", at, owner_user_id="u_consent",
                 history=[{"ts": "2026-01-01T00:00:00Z", "action": "INSTALLED", "technician_id": 1, "notes": ""}])
        w.device("w2", "watch", at, owner_user_id="u_never")
        w.device("w3", "watch", at, owner_user_id=None)  # owner known only from the user's device list
        for dev, room in (("aq1", "kitchen"), ("aq2", "office")):
            w.device(dev, "air_quality", at, location=room, history=[
                {"ts": "2026-01-01T00:00:00Z", "action": "INSTALLED", "technician_id": 7, "notes": "wall"},
                {"ts": "2026-06-01T00:00:00Z", "action": "CALIBRATED", "technician_id": 7, "notes": ""}])

        # heart rate: one sample a minute DAY 20:00 - DAY+1 04:00 (two 4-hour buckets), 60 bpm awake,
        # 50 bpm while asleep (sleep DAY 22:30 -> DAY+1 02:00: crosses a bucket edge and midnight)
        sleep_start, sleep_end = DAY + timedelta(hours=22, minutes=30), DAY + timedelta(days=1, hours=2)
        for dev in ("w1", "w2", "w3"):
            for b in range(2):
                start = DAY + timedelta(hours=20 + 4 * b)
                samples = []
                for i in range(240):
                    ts = start + timedelta(minutes=i)
                    samples.append((ts, 50.0 if sleep_start <= ts < sleep_end else 60.0, 3.0))
                w.bucket("heart_rates", f"hr:{dev}:{b}", dev, start, start + timedelta(hours=4), samples, at)
            w.bucket("sleeps", f"sl:{dev}", dev, DAY + timedelta(days=1, hours=2),
                     DAY + timedelta(days=1, hours=2, minutes=15),
                     [(sleep_start, sleep_end, int((sleep_end - sleep_start).total_seconds() * 1000))], at)
            # steps: DAY 11:00-13:00, 10 steps a minute (8 buckets of 15 minutes)
            for b in range(8):
                start = DAY + timedelta(hours=11, minutes=15 * b)
                w.bucket("steps", f"st:{dev}:{b}", dev, start, start + timedelta(minutes=15),
                         [(start + timedelta(minutes=i), 10) for i in range(15)], at)
        # a bad heart-rate sample and a bad sleep session
        w.bucket("heart_rates", "hr:w1:bad", "w1", DAY, DAY + timedelta(hours=4),
                 [(DAY + timedelta(minutes=1), 400.0, 3.0)], at)
        w.bucket("sleeps", "sl:w1:bad", "w1", DAY, DAY + timedelta(minutes=15),
                 [(DAY + timedelta(minutes=10), DAY + timedelta(minutes=5), 1000)], at)

        # air quality: aq1 every minute DAY 10:00-10:59 with a 3-minute gap (10:20-10:22,
        # interpolated) and a 10-minute gap (10:40-10:49, left out); ts in UTC "Z"
        rows = []
        for i in range(60):
            if 20 <= i <= 22 or 40 <= i <= 49:
                continue
            ts = (DAY + timedelta(hours=10, minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            rows.append(("aq1", ts, [100.0 + i, 21.5, 45.0, 101.3, 0.5, 600.0, 3.0]))
        # aq2: an offset timestamp (12:00+02:00 = 10:00Z) and epoch seconds (10:01Z)
        rows.append(("aq2", (DAY + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%S+02:00"),
                     [50.0, 20.0, 40.0, 100.0, 0.4, 500.0, 2.0]))
        rows.append(("aq2", str(int((DAY + timedelta(hours=10, minutes=1)).timestamp())),
                     [51.0, 20.0, 40.0, 100.0, 0.4, 500.0, 2.0]))
        # bad ones
        nan = float("nan")
        rows.append(("aq2", (DAY + timedelta(hours=10, minutes=2)).isoformat(), [nan, 20.0, 150.0, 100.0, 0.4, 500.0, 2.0]))
        rows.append(("aq2", "yesterday at noon", [50.0, 20.0, 40.0, 100.0, 0.4, 500.0, 2.0]))
        rows.append(("aq2", "2030-01-01T00:00:00Z", [50.0, 20.0, 40.0, 100.0, 0.4, 500.0, 2.0]))
        rows.append(("aq2", "1999-12-31T00:00:00Z", [50.0, 20.0, 40.0, 100.0, 0.4, 500.0, 2.0]))
        rows.append(("ghost", DAY.isoformat(), [50.0, 20.0, 40.0, 100.0, 0.4, 500.0, 2.0]))
        w.air_quality(rows, at)
        w.quarantine("air_quality", "aq:bad:1", "readings_wrong_length", {"devid": "aq1", "readings": [1, 2]}, at)


def snapshot(settings, schemas=("stage", "agg", "curated")) -> dict[str, str]:
    """md5 of the ordered content of every table in the given schemas."""
    out = {}
    with pg_connect("superuser", settings=settings) as conn:
        tables = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1", (list(schemas),)).fetchall()
        for (t,) in tables:
            out[t] = conn.execute(f"select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) "
                                  f"from {t} as x").fetchone()[0]
    return out


