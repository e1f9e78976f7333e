"""Retention per warehouse layer (DESIGN §4, docs/warehouse.md, retention).

Each layer keeps ``RETENTION_<LAYER>_DAYS`` days (settings; empty = forever):

* ``raw``: the readings collections (and their dlt child tables), by capture time
  (``_ingested_at``). The registries (users, devices) and the quarantine are never aged out.
* ``stage``, ``agg``: the time-series models, found in ``ops.warehouse_time_series`` (written by
  every dbt run from the models' own configs), by their time column.
* ``predictions``: ``ml.predictions`` by ``time``; with TimescaleDB its chunks are also
  compressed after ``COMPRESS_PREDICTIONS_AFTER_DAYS``.

With TimescaleDB a hypertable or continuous aggregate gets a retention policy (drop_chunks in a
background job) and nothing is deleted here. A hypertable that continuous aggregates are built
on gets a job of its own instead (``ops.drop_chunks_keeping_aggregates``): TimescaleDB's
retention policy records every dropped chunk as an invalidation of its range, and the next
refresh of an aggregate over that range would delete the aggregate's rows for it; this job drops
the chunks with ``timescaledb.skip_cagg_invalidation`` on, so the aggregates keep those periods; any other table (always on plain PostgreSQL) has
its old rows deleted, in batches, by :func:`apply_retention` (the daily ``iot_retention`` DAG,
``iot retention``). Aggregates are separate tables, so they keep their periods when their source
rows go (continuous aggregates are never refreshed over dropped chunks: macros/timescale.sql).
Re-running changes nothing more: policies are replaced only when their setting changed, and a
second delete finds no rows older than the cut-off.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

LAYERS = ("raw", "stage", "predictions", "agg")
# raw tables holding readings (the collections of docs/contracts.md §2 and dlt's child tables)
RAW_TIME_SERIES = ("air_quality", "heart_rates", "heart_rates__metrics", "steps", "steps__metrics",
                   "sleeps", "sleeps__metrics")
PREDICTIONS_TABLE = "ml.predictions"
KEEPING_AGGREGATES_PROC = "drop_chunks_keeping_aggregates"
KEEPING_AGGREGATES_DDL = """
create or replace procedure ops.drop_chunks_keeping_aggregates(job_id int, config jsonb)
language plpgsql as $$
begin
    -- the continuous aggregates on this hypertable keep the dropped periods: the drop is not
    -- recorded as an invalidation, so no refresh recomputes (empties) them
    perform set_config('timescaledb.skip_cagg_invalidation', 'on', true);
    perform drop_chunks((config ->> 'relation')::regclass,
                        older_than => now() - (config ->> 'drop_after')::interval);
end
$$;
comment on procedure ops.drop_chunks_keeping_aggregates(int, jsonb) is
    'Retention job (warehouse/retention.py) of hypertables with continuous aggregates: drop_chunks without invalidating the aggregates'
"""
DELETE_BATCH_ROWS = 50_000

RUNS_DDL = """
create table if not exists ops.retention_runs (
    run_at       timestamptz not null,
    relation     text        not null,
    layer        text        not null,
    keep_days    int,
    action       text        not null,
    rows_deleted bigint,
    primary key (run_at, relation)
);
comment on table ops.retention_runs is
    'What each retention run did per table: a TimescaleDB policy set / removed / unchanged, or rows deleted'
"""


@dataclass
class TimeSeriesTable:
    relation: str      # schema.table
    layer: str         # one of LAYERS
    time_column: str
    role: str          # the warehouse role that owns it (and may delete from it)


@dataclass
class RetentionAction:
    relation: str
    layer: str
    keep_days: int | None
    action: str        # "policy set", "policy removed", "policy unchanged", "deleted", "kept"
    rows_deleted: int | None = None


def keep_days(settings: Settings, layer: str) -> int | None:
    return getattr(settings, f"retention_{layer}_days")


def _timescaledb(conn) -> bool:
    return conn.execute("select 1 from pg_extension where extname = 'timescaledb'").fetchone() is not None


def _exists(conn, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def time_series_tables(settings: Settings | None = None) -> list[TimeSeriesTable]:
    """Every table retention applies to, with its layer, time column and owning role."""
    s = settings or get_settings()
    tables: list[TimeSeriesTable] = []
    with pg_connect("transformer", settings=s, autocommit=True) as conn:
        for name in RAW_TIME_SERIES:
            if _exists(conn, f"raw.{name}"):
                tables.append(TimeSeriesTable(f"raw.{name}", "raw", "_ingested_at", "loader"))
        if _exists(conn, "ops.warehouse_time_series"):
            for relation, layer, column in conn.execute(
                    "select relation, layer, time_column from ops.warehouse_time_series order by relation"):
                if layer in LAYERS and _exists(conn, relation):
                    tables.append(TimeSeriesTable(relation, layer, column, "transformer"))
        if _exists(conn, PREDICTIONS_TABLE):
            tables.append(TimeSeriesTable(PREDICTIONS_TABLE, "predictions", "time", "transformer"))
    return tables


def apply_retention(settings: Settings | None = None, progress: bool = True) -> list[RetentionAction]:
    """Apply every layer's retention once; returns (and records in ops.retention_runs) what it did."""
    s = settings or get_settings()
    actions: list[RetentionAction] = []
    with pg_connect("transformer", settings=s, autocommit=True) as conn:
        timescale = _timescaledb(conn)
        run_at = conn.execute("select now()").fetchone()[0]
    for table in time_series_tables(s):
        days = keep_days(s, table.layer)
        with pg_connect(table.role, settings=s, autocommit=True) as conn:
            kind = _timescale_kind(conn, table.relation) if timescale else None
            if kind:
                action = _sync_retention_policy(conn, table.relation, days)
                if table.relation == PREDICTIONS_TABLE:
                    _sync_predictions_compression(conn, s.compress_predictions_after_days)
            elif days:
                action = _delete_older_rows(conn, table, days, progress)
            else:
                action = RetentionAction(table.relation, table.layer, None, "kept")
        action.layer = table.layer
        actions.append(action)
        if progress:
            rows = f", {action.rows_deleted} rows" if action.rows_deleted is not None else ""
            log.info("retention %-40s %-11s keep %s: %s%s", table.relation, table.layer,
                     f"{days} days" if days else "forever", action.action, rows)
    _record(s, run_at, actions)
    return actions


def _timescale_kind(conn, relation: str) -> str | None:
    """'hypertable', 'continuous_aggregate' or None (a plain table)."""
    schema, name = relation.split(".", 1)
    if conn.execute("select 1 from timescaledb_information.hypertables "
                    "where hypertable_schema = %s and hypertable_name = %s", (schema, name)).fetchone():
        return "hypertable"
    if conn.execute("select 1 from timescaledb_information.continuous_aggregates "
                    "where view_schema = %s and view_name = %s", (schema, name)).fetchone():
        return "continuous_aggregate"
    return None


def _policy_job(conn, relation: str, proc_name: str) -> tuple[int, str] | None:
    """(job_id, config) of a relation's policy job; a continuous aggregate's jobs are attached to
    its materialization hypertable."""
    schema, name = relation.split(".", 1)
    row = conn.execute(
        """
        select j.job_id, j.config::text
        from timescaledb_information.jobs as j
        left join timescaledb_information.continuous_aggregates as c
          on c.view_schema = %(schema)s and c.view_name = %(name)s
        where j.proc_name = %(proc)s
          and ((j.hypertable_schema = %(schema)s and j.hypertable_name = %(name)s)
            or (j.hypertable_schema = c.materialization_hypertable_schema
                and j.hypertable_name = c.materialization_hypertable_name))
        """, {"schema": schema, "name": name, "proc": proc_name}).fetchone()
    return row


def _aggregated(conn, relation: str) -> bool:
    """True when continuous aggregates are built on this hypertable."""
    schema, name = relation.split(".", 1)
    return conn.execute("select 1 from timescaledb_information.continuous_aggregates "
                        "where hypertable_schema = %s and hypertable_name = %s", (schema, name)).fetchone() is not None


def _keeping_aggregates_job(conn, relation: str) -> tuple[int, str] | None:
    return conn.execute("select job_id, config::text from timescaledb_information.jobs "
                        "where proc_schema = 'ops' and proc_name = %s and config ->> 'relation' = %s",
                        (KEEPING_AGGREGATES_PROC, relation)).fetchone()


def _sync_retention_policy(conn, relation: str, days: int | None) -> RetentionAction:
    if _timescale_kind(conn, relation) == "hypertable" and _aggregated(conn, relation):
        return _sync_keeping_aggregates_job(conn, relation, days)
    job = _policy_job(conn, relation, "policy_retention")
    if days is None:
        if job is None:
            return RetentionAction(relation, "", None, "kept")
        conn.execute("select remove_retention_policy(%s::regclass, if_exists => true)", (relation,))
        return RetentionAction(relation, "", None, "policy removed")
    if job is not None:
        same = conn.execute("select (%s::jsonb ->> 'drop_after')::interval = make_interval(days => %s)",
                            (job[1], days)).fetchone()[0]
        if same:
            return RetentionAction(relation, "", days, "policy unchanged")
        conn.execute("select remove_retention_policy(%s::regclass, if_exists => true)", (relation,))
    conn.execute("select add_retention_policy(%s::regclass, drop_after => make_interval(days => %s))",
                 (relation, days))
    return RetentionAction(relation, "", days, "policy set")


def _sync_keeping_aggregates_job(conn, relation: str, days: int | None) -> RetentionAction:
    conn.execute("select remove_retention_policy(%s::regclass, if_exists => true)", (relation,))
    job = _keeping_aggregates_job(conn, relation)
    if days is None:
        if job is None:
            return RetentionAction(relation, "", None, "kept")
        conn.execute("select delete_job(%s)", (job[0],))
        return RetentionAction(relation, "", None, "policy removed")
    if job is not None:
        same = conn.execute("select (%s::jsonb ->> 'drop_after')::interval = make_interval(days => %s)",
                            (job[1], days)).fetchone()[0]
        if same:
            return RetentionAction(relation, "", days, "policy unchanged")
        conn.execute("select delete_job(%s)", (job[0],))
    conn.execute(KEEPING_AGGREGATES_DDL)
    conn.execute("select add_job('ops.drop_chunks_keeping_aggregates', '1 day', "
                 "config => jsonb_build_object('relation', %s::text, 'drop_after', make_interval(days => %s)::text))",
                 (relation, days))
    return RetentionAction(relation, "", days, "policy set")


def _sync_predictions_compression(conn, days: int | None) -> None:
    """Compress ml.predictions chunks older than ``days`` (segments per device, newest first)."""
    compressed = conn.execute("select compression_enabled from timescaledb_information.hypertables "
                              "where hypertable_schema = 'ml' and hypertable_name = 'predictions'").fetchone()
    job = _policy_job(conn, PREDICTIONS_TABLE, "policy_compression")
    if days is None:
        if job is not None:
            conn.execute("select remove_compression_policy('ml.predictions', if_exists => true)")
        return
    if not (compressed and compressed[0]):
        conn.execute("alter table ml.predictions set (timescaledb.compress, "
                     "timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'time desc')")
    if job is not None:
        same = conn.execute("select (%s::jsonb ->> 'compress_after')::interval = make_interval(days => %s)",
                            (job[1], days)).fetchone()[0]
        if same:
            return
        conn.execute("select remove_compression_policy('ml.predictions', if_exists => true)")
    conn.execute("select add_compression_policy('ml.predictions', compress_after => make_interval(days => %s))",
                 (days,))


def _delete_older_rows(conn, table: TimeSeriesTable, days: int, progress: bool) -> RetentionAction:
    """Delete rows older than the cut-off in batches (one short transaction each)."""
    column = table.time_column
    cutoff = conn.execute("select now() - make_interval(days => %s)", (days,)).fetchone()[0]
    total = 0
    while True:
        deleted = conn.execute(
            f"delete from {table.relation} where ctid = any(array("
            f"select ctid from {table.relation} where {column} < %s limit {DELETE_BATCH_ROWS}))",
            (cutoff,)).rowcount
        total += deleted
        if progress and deleted:
            log.info("retention %s: %d rows older than %s deleted so far", table.relation, total, cutoff)
        if deleted < DELETE_BATCH_ROWS:
            break
    return RetentionAction(table.relation, table.layer, days, "deleted", total)


def _record(settings: Settings, run_at, actions: list[RetentionAction]) -> None:
    with pg_connect("transformer", settings=settings) as conn:
        conn.execute(RUNS_DDL)
        for a in actions:
            conn.execute("insert into ops.retention_runs (run_at, relation, layer, keep_days, action, rows_deleted) "
                         "values (%s, %s, %s, %s, %s, %s) on conflict do nothing",
                         (run_at, a.relation, a.layer, a.keep_days, a.action, a.rows_deleted))


def as_dicts(actions: list[RetentionAction]) -> list[dict]:
    return [asdict(a) for a in actions]
