"""The ``ml`` tables (DESIGN §4, docs/contracts.md §4), created idempotently by the transformer role."""

from __future__ import annotations

import re

_LOCK_KEY = 0x6D6C5F736368  # advisory lock: concurrent first runs must not race on CREATE TABLE

DDL = """
create table if not exists ml.predictions (
    time          timestamptz      not null,
    device_id     text             not null,
    measure_name  text             not null,
    value         double precision not null,
    model_name    text             not null,
    model_version text             not null,
    issued_at     timestamptz      not null,
    primary key (device_id, time, measure_name)
);
create index if not exists predictions_issued_at_idx on ml.predictions (issued_at, model_name, model_version);
comment on table ml.predictions is
    'IAQ forecasts: measure_name iaq~h is the value predicted h minutes before time (issued_at = time - h)';

create table if not exists ml.model_candidates (
    registered_model  text not null,
    model_version     text not null,
    candidate         text not null,
    run_id            text,
    trained_at        timestamptz not null default now(),
    val_mae           double precision,
    val_rmse          double precision,
    persistence_mae   double precision,
    mae_ratio         double precision,
    mae_by_horizon    jsonb,
    train_windows     int,
    val_windows       int,
    is_current        boolean not null default true,
    params            jsonb,
    fold_days         text[],
    primary key (registered_model, model_version)
);
comment on table ml.model_candidates is
    'Every registered forecast model version with its walk-forward validation error (over fold_days) and'
    ' chosen parameters; is_current marks the arms of the selection';

create table if not exists ml.model_selections (
    issue_minute    timestamptz primary key,
    arm             text not null,
    model_version   text not null,
    ucb_scores      jsonb,
    chosen_at       timestamptz not null default now(),
    reward          double precision,
    model_mae       double precision,
    persistence_mae double precision,
    n_points        int,
    settled_at      timestamptz,
    note            text
);
comment on table ml.model_selections is
    'One choice per forecast round (issue minute) with every arm''s score; reward, model_mae, persistence_mae,'
    ' n_points: the chosen arm over the device forecasts settled so far (each device settles when its actuals exist)';

create table if not exists ml.arm_forecasts (
    issue_minute  timestamptz not null,
    device_id     text not null,
    arm           text not null,
    model_version text not null,
    issued_at     timestamptz not null,
    forecast      double precision[] not null,
    primary key (issue_minute, device_id, arm)
);
comment on table ml.arm_forecasts is
    'Every arm''s forecast of a round, kept until that device''s actuals exist and it is scored into ml.arm_scores';

create table if not exists ml.arm_scores (
    issue_minute    timestamptz not null,
    arm             text not null,
    model_version   text not null,
    devices         int not null default 0,
    reward_sum      double precision not null default 0,
    abs_error_sum   double precision not null default 0,
    points          int not null default 0,
    diff_sq_sum     double precision not null default 0,
    primary key (issue_minute, arm, model_version)
);
comment on table ml.arm_scores is
    'Realised error of every arm per round, summed over the device forecasts settled so far: the selection''s'
    ' statistics and (with the chosen arm of ml.model_selections) its regret. diff_sq_sum: sum over device'
    ' forecasts of (persistence error - arm error)^2, for the confidence of beating persistence';

create table if not exists ml.forecast_runs (
    issue_minute      timestamptz primary key,
    model_name        text,
    model_version     text,
    devices_predicted int,
    devices_skipped   int,
    skipped           jsonb,
    rows_written      int,
    rewards_settled   int,
    rewards_expired   int,
    seconds           jsonb,
    started_at        timestamptz,
    finished_at       timestamptz
);
comment on table ml.forecast_runs is 'One row per forecast cycle: what ran, what was skipped and why, timings';

-- columns added after the first release (issue 15): existing installs get them here
alter table ml.model_candidates add column if not exists params jsonb;
alter table ml.model_candidates add column if not exists fold_days text[];
alter table ml.forecast_runs add column if not exists rewards_expired int;
"""

_HYPERTABLE = "select create_hypertable('ml.predictions', 'time', if_not_exists => true, migrate_data => true)"

# what the DDL creates, read from it (one definition): tables, indexes, columns added later
TABLES = tuple(re.findall(r"create table if not exists ml\.(\w+)", DDL))
INDEXES = tuple(re.findall(r"create index if not exists (\w+)", DDL))
ADDED_COLUMNS = tuple(re.findall(r"alter table ml\.(\w+) add column if not exists (\w+)", DDL))

_created: set[tuple] = set()


def _complete(cur) -> bool:
    """Whether every table, index and added column is there (and ml.predictions is a hypertable
    where TimescaleDB is): then the DDL, which locks every table, is not run at all."""
    cur.execute("""
        select (select count(*) from pg_tables where schemaname = 'ml' and tablename = any(%(tables)s))
             = cardinality(%(tables)s::text[])
           and (select count(*) from pg_indexes where schemaname = 'ml' and indexname = any(%(indexes)s))
             = cardinality(%(indexes)s::text[])
           and (select count(*) from information_schema.columns
                where table_schema = 'ml' and table_name || '.' || column_name = any(%(columns)s))
             = cardinality(%(columns)s::text[])""",
                {"tables": list(TABLES), "indexes": list(INDEXES),
                 "columns": [f"{table}.{column}" for table, column in ADDED_COLUMNS]})
    if not cur.fetchone()[0]:
        return False
    cur.execute("select 1 from pg_extension where extname = 'timescaledb'")
    if not cur.fetchone():
        return True
    cur.execute("select 1 from timescaledb_information.hypertables "
                "where hypertable_schema = 'ml' and hypertable_name = 'predictions'")
    return cur.fetchone() is not None


def ensure_schema(conn) -> None:
    """Create the ml tables when missing (once per process and database).

    Every forecast cycle, training and benchmark process comes here. When the tables are complete,
    the catalog is left alone: `add column if not exists` takes an exclusive lock on its table and
    `create index if not exists` a share lock on ml.predictions even when there is nothing to do,
    and taken while a forecast task wrote ml.forecast_runs and ml.predictions they deadlocked with
    it (`make demo` stopped there, its training aborted)."""
    info = conn.info
    key = (info.host, info.port, info.dbname)
    if key in _created:
        return
    with conn.transaction(), conn.cursor() as cur:
        if not _complete(cur):
            cur.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute(DDL)
            cur.execute("select 1 from pg_extension where extname = 'timescaledb'")
            if cur.fetchone():   # plain PostgreSQL otherwise: the same table without chunking
                cur.execute(_HYPERTABLE)
    _created.add(key)
