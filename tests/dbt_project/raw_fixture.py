"""The ``raw`` tables of docs/contracts.md §2, created and filled without the extract.

Tests and the transform benchmark (which imports it as `tests.dbt_project.raw_fixture`, run from
the repository root) use this to exercise dbt on its own (the dlt extract that
normally writes these tables is another stage). Run it as the loader role, like the extract.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from iot_core.contract import MEASURE_NAMES
from iot_core.timestamps import TimestampError, to_utc

RAW_DDL = """
create table if not exists raw.air_quality (
    _id text primary key, devid text, ts text, ts_utc timestamptz, ts_sent text,
    iaq double precision, temperature double precision, humidity double precision, pressure double precision,
    voc double precision, co2 double precision, iaq_accuracy double precision,
    _ingested_at timestamptz, _dlt_load_id text);
create index if not exists air_quality_ingested_idx on raw.air_quality (_ingested_at);
create table if not exists raw.heart_rates (
    _id text primary key, device_id text, created_at timestamptz, ended_at timestamptz, sample_count int,
    _ingested_at timestamptz, _dlt_load_id text);
create table if not exists raw.heart_rates__metrics (
    _parent_id text, idx int, ts timestamptz, bpm double precision, confidence double precision,
    _ingested_at timestamptz, _dlt_load_id text, primary key (_parent_id, idx));
create table if not exists raw.steps (
    _id text primary key, device_id text, created_at timestamptz, ended_at timestamptz, sample_count int,
    _ingested_at timestamptz, _dlt_load_id text);
create table if not exists raw.steps__metrics (
    _parent_id text, idx int, ts timestamptz, steps bigint,
    _ingested_at timestamptz, _dlt_load_id text, primary key (_parent_id, idx));
create table if not exists raw.sleeps (
    _id text primary key, device_id text, created_at timestamptz, ended_at timestamptz, sample_count int,
    _ingested_at timestamptz, _dlt_load_id text);
create table if not exists raw.sleeps__metrics (
    _parent_id text, idx int, start_ts timestamptz, end_ts timestamptz, duration bigint,
    _ingested_at timestamptz, _dlt_load_id text, primary key (_parent_id, idx));
create table if not exists raw.users (
    _id text primary key, user_id text, age int, height int, gender text, email text, dob timestamptz,
    created_at timestamptz, devices jsonb, share_with_research_asof timestamptz,
    share_with_public_asof timestamptz, share_with_friends_asof timestamptz,
    _ingested_at timestamptz, _dlt_load_id text);
create table if not exists raw.devices (
    _id text primary key, device_id text, kind text, owner_user_id text, lat double precision,
    long double precision, location_description text, building text, floor text, room text,
    manufacturer_name text, manufacturer_website text, model text, mac text, installed_at timestamptz,
    active boolean, history jsonb, _ingested_at timestamptz, _dlt_load_id text);
create table if not exists raw.quarantine (
    collection text, source_id text, reason text, document jsonb, _ingested_at timestamptz,
    quarantined_at timestamptz default now(), _dlt_load_id text, primary key (collection, source_id));
-- the stage models' incremental cursor: without these, every incremental run scans all of raw
create index if not exists heart_rates_ingested_idx on raw.heart_rates (_ingested_at);
create index if not exists steps_ingested_idx on raw.steps (_ingested_at);
create index if not exists sleeps_ingested_idx on raw.sleeps (_ingested_at);
create index if not exists quarantine_ingested_idx on raw.quarantine (_ingested_at);
"""

# ml.predictions (docs/contracts.md §4) is written by the forecast DAG; agg.forecast_accuracy reads
# it as a source, so a warehouse without forecasts yet still needs the (empty) table to build.
ML_PREDICTIONS_DDL = """
create table if not exists ml.predictions (
    time timestamptz not null, device_id text not null, measure_name text not null, value double precision,
    model_name text, model_version text, issued_at timestamptz,
    unique (device_id, time, measure_name))
"""

RAW_TABLES = ("air_quality", "heart_rates", "heart_rates__metrics", "steps", "steps__metrics", "sleeps",
              "sleeps__metrics", "users", "devices", "quarantine")
READING_ORDER = MEASURE_NAMES  # the data contract's payload order


def create_ml_predictions(conn) -> None:
    """The empty forecast table (run as the transformer role)."""
    conn.execute(ML_PREDICTIONS_DDL)
    conn.commit()


def create_raw_tables(conn, drop: bool = False) -> None:
    with conn.cursor() as cur:
        if drop:
            cur.execute("drop table if exists " + ", ".join(f"raw.{t}" for t in RAW_TABLES) + " cascade")
        cur.execute(RAW_DDL)
    conn.commit()


class RawWriter:
    """Insert contract-shaped rows; every call is one load (``_dlt_load_id``) at ``ingested_at``."""

    def __init__(self, conn, load_id: str = "test-load"):
        self.conn = conn
        self.load_id = load_id

    def _copy(self, table: str, columns: Iterable[str], rows: Iterable[tuple]) -> None:
        cols = ", ".join(columns)
        with self.conn.cursor() as cur, cur.copy(f"copy raw.{table} ({cols}) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
        self.conn.commit()

    def air_quality(self, rows: Iterable[tuple[str, str, list[float]]], ingested_at: datetime, id_suffix: str = "") -> None:
        """rows: (devid, ts as sent, 7 readings in contract order). ts_utc as the extract parses it
        (iot_core.timestamps); null when it cannot (the extract would have quarantined the
        document: such rows stand for ones loaded before, or by another loader)."""
        def gen():
            for devid, ts, readings in rows:
                try:
                    utc = to_utc(ts)
                except TimestampError:
                    utc = None
                yield (f"aq:{devid}:{ts}{id_suffix}", devid, ts, utc, *readings, ingested_at, self.load_id)
        self._copy("air_quality", ["_id", "devid", "ts", "ts_utc", *READING_ORDER, "_ingested_at", "_dlt_load_id"],
                   gen())

    def bucket(self, kind: str, bucket_id: str, device_id: str, created_at: datetime, ended_at: datetime,
               metrics: list[tuple], ingested_at: datetime) -> None:
        """kind: heart_rates (ts, bpm, confidence) / steps (ts, steps) / sleeps (start_ts, end_ts, duration)."""
        metric_cols = {"heart_rates": ["ts", "bpm", "confidence"], "steps": ["ts", "steps"],
                       "sleeps": ["start_ts", "end_ts", "duration"]}[kind]
        with self.conn.cursor() as cur:  # a re-delivered bucket replaces its samples (merge on _id)
            cur.execute(f"delete from raw.{kind}__metrics where _parent_id = %s", (bucket_id,))
            cur.execute(f"delete from raw.{kind} where _id = %s", (bucket_id,))
        self._copy(kind, ["_id", "device_id", "created_at", "ended_at", "sample_count", "_ingested_at", "_dlt_load_id"],
                   [(bucket_id, device_id, created_at, ended_at, len(metrics), ingested_at, self.load_id)])
        self._copy(f"{kind}__metrics", ["_parent_id", "idx", *metric_cols, "_ingested_at", "_dlt_load_id"],
                   [(bucket_id, i, *m, ingested_at, self.load_id) for i, m in enumerate(metrics)])

    def user(self, user_id: str, age: int, devices: list[str], ingested_at: datetime, research_asof=None,
             gender: str = "female", created_at: datetime | None = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute("delete from raw.users where _id = %s", (user_id,))
        self._copy("users", ["_id", "user_id", "age", "height", "gender", "email", "dob", "created_at", "devices",
                             "share_with_research_asof", "_ingested_at", "_dlt_load_id"],
                   [(user_id, user_id, age, 170, gender, f"{user_id}@example.org", None, created_at or ingested_at,
                     json.dumps(devices), research_asof, ingested_at, self.load_id)])

    def device(self, device_id: str, kind: str, ingested_at: datetime, owner_user_id: str | None = None,
               location: str | None = None, history: list[dict] | None = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute("delete from raw.devices where _id = %s", (device_id,))
        self._copy("devices", ["_id", "device_id", "kind", "owner_user_id", "location_description",
                               "manufacturer_name", "model", "installed_at", "active", "history",
                               "_ingested_at", "_dlt_load_id"],
                   [(device_id, device_id, kind, owner_user_id, location, "Acme", "m1", ingested_at, True,
                     json.dumps(history or []), ingested_at, self.load_id)])

    def quarantine(self, collection: str, source_id: str, reason: str, document: dict, ingested_at: datetime) -> None:
        self._copy("quarantine", ["collection", "source_id", "reason", "document", "_ingested_at", "quarantined_at",
                                  "_dlt_load_id"],
                   [(collection, source_id, reason, json.dumps(document), ingested_at, ingested_at, self.load_id)])
