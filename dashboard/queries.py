"""Every query of the dashboard, in one place (the pages only lay out what these return).

All of them run as the read-only analyst role (``ANALYST_USER``) and read what that role may
read: ``stage``, ``agg``, ``curated``, ``ml`` and the ``ops`` tables granted to it one by one
(alerts, task failures, data-quality results). No query selects an e-mail address, a date of
birth or a user id: users appear only by the pseudonymous ``research_id`` of ``curated``.

Tables other teams are still building (alerts, new forecasting columns) may be missing, or not
granted yet. Every query names the relations and columns it needs; :meth:`Warehouse.run` checks
them against the catalog the role can see and returns an :class:`Unavailable` with a sentence a
user can act on instead of raising.

Parameters are SQLAlchemy binds (``:device``); casts are written ``cast(x as t)`` because ``::``
would read as a bind. Grafana's seed-000 panel is generated from :data:`DEVICE_IAQ_VS_FORECAST`
(:mod:`dashboard.grafana`), so both show the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from iot_core.connections import sqlalchemy_engine
from iot_core.settings import Settings, get_settings

if TYPE_CHECKING:
    import sqlalchemy

NO_READINGS = "no data yet: switch on iot_raw_extract and iot_stage_transform in the Airflow UI (or run `make demo`)"
NO_PREDICTIONS = "no forecasts yet: train the models (iot_train_models) and switch on iot_forecast"
NO_ACCURACY = ("no realised forecast errors yet: agg.forecast_accuracy is built by iot_agg_transform_daily "
               "once predictions meet their actual readings")
NO_ALERTS_TABLES = "alerts are not recorded yet: switch on iot_alerts (docs/alerts.md)"
NO_AGG = "no aggregates yet: switch on iot_agg_transform_daily / _monthly (or run `iot transform`)"
NO_CURATED = "no research data yet: iot_curated_transform builds it for users who consented to research"


@dataclass(frozen=True)
class Query:
    """An SQL statement with the relations (``schema.table``) and columns it needs."""

    sql: str
    needs: dict[str, tuple[str, ...]]
    empty: str = NO_READINGS  # shown when it returns no row


@dataclass
class Unavailable:
    """Why a query could not run: a relation or column is missing or not readable by the analyst."""

    reason: str


@dataclass
class Result:
    frame: pd.DataFrame | None = None
    unavailable: Unavailable | None = None
    empty_message: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.frame is not None and not self.frame.empty

    @property
    def message(self) -> str:
        return self.unavailable.reason if self.unavailable else self.empty_message


# ---------------------------------------------------------------- fleet
FLEET = Query(
    """
    with latest as (
        select device_id, max(time) as last_seen
        from agg.agg_latest_reading
        group by device_id
    ), rejects as (
        select device_id, count(*) as rejected
        from stage.stg_rejects
        where _ingested_at > now() - interval '24 hours' and device_id is not null
        group by device_id
    ), readings as (
        select device_id, sum(reading_count) as readings
        from agg.agg_device_hourly
        where hour > now() - interval '24 hours'
        group by device_id
    )
    select d.device_id, d.kind, d.latitude, d.longitude, d.building, d.floor, d.room,
           d.location_description, d.is_active, l.last_seen,
           extract(epoch from now() - l.last_seen) / 60.0 as minutes_since_seen,
           coalesce(r.readings, 0) as readings_24h, coalesce(x.rejected, 0) as rejected_24h,
           coalesce(x.rejected, 0) / nullif(coalesce(r.readings, 0) + coalesce(x.rejected, 0), 0)
               as quarantine_rate_24h
    from stage.dim_devices as d
    left join latest as l on l.device_id = d.device_id
    left join readings as r on r.device_id = d.device_id
    left join rejects as x on x.device_id = d.device_id
    where d.kind = 'air_quality'
    order by d.device_id
    """,
    {"stage.dim_devices": ("device_id", "kind", "latitude", "longitude", "building", "floor", "room",
                           "location_description", "is_active"),
     "agg.agg_latest_reading": ("device_id", "time"),
     "stage.stg_rejects": ("device_id", "_ingested_at"),
     "agg.agg_device_hourly": ("device_id", "hour", "reading_count")},
)

FIRING_ALERTS = Query(
    """
    select id, rule_id, device_id, kind, measure, severity, state, started_at, fired_at, value,
           "limit", message
    from ops.alert_events
    where state = 'firing'
    order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, fired_at desc
    """,
    {"ops.alert_events": ("id", "rule_id", "device_id", "kind", "measure", "severity", "state", "started_at",
                          "fired_at", "value", "limit", "message")},
    empty="no alert is firing",
)

# ---------------------------------------------------------------- device
DEVICES = Query(
    "select device_id from stage.dim_devices where kind = 'air_quality' order by device_id",
    {"stage.dim_devices": ("device_id", "kind")},
)

DEVICE_LAST_SEEN = Query(
    "select max(time) as last_seen from agg.agg_latest_reading where device_id = :device",
    {"agg.agg_latest_reading": ("device_id", "time")},
)

# Seed 000's Grafana panel: IAQ on the minute grid of the forecasts against the predictions made
# 5, 10 and 15 minutes earlier. docker/grafana/dashboards/iot_overview.json carries this text
# with Grafana's macros (python -m dashboard.grafana writes it; a test checks they agree).
# The readings are agg.agg_sensor_readings_minutely's per-minute average, computed here from stage
# with the time range applied before grouping: through the view, the range reaches only the
# grouped minute, so every reading of the device since the beginning was averaged first (0.6 s per
# chart at 30 days, benchmarks/dashboard); here it is one index range. A test checks that both
# give the same rows.
DEVICE_IAQ_VS_FORECAST = Query(
    """
with measures as (
  select date_trunc('minute', time) as time, avg(value) as "IAQ" from stage.stg_sensor_readings
  where device_id = :device and measure_name = 'iaq'
    and time >= :start and time < :end + interval '1 minute'
  group by 1
), predictions as (
  select time,
         max(value) filter (where measure_name = 'iaq~5')  as "IAQ 5 min",
         max(value) filter (where measure_name = 'iaq~10') as "IAQ 10 min",
         max(value) filter (where measure_name = 'iaq~15') as "IAQ 15 min"
  from ml.predictions
  where device_id = :device and time between :start and :end + interval '15 minutes'
  group by time
)
select coalesce(m.time, p.time) as time, m."IAQ", p."IAQ 5 min", p."IAQ 10 min", p."IAQ 15 min"
from measures m full join predictions p on p.time = m.time
order by 1
""",
    {"stage.stg_sensor_readings": ("time", "device_id", "measure_name", "value"),
     "ml.predictions": ("time", "device_id", "measure_name", "value")},
)

# agg.agg_sensor_readings_minutely of one device and measure, range first (see above)
DEVICE_MEASURE_MINUTELY = Query(
    """
    select date_trunc('minute', time) as time, avg(value) as value from stage.stg_sensor_readings
    where device_id = :device and measure_name = :measure
      and time >= :start and time < :end + interval '1 minute'
    group by 1
    order by 1
    """,
    {"stage.stg_sensor_readings": ("time", "device_id", "measure_name", "value")},
)

# the newest forecast of the device: the 15 rows issued at its newest issue minute
NEWEST_FORECAST = Query(
    """
    with newest as (
        select max(issued_at) as issued_at from ml.predictions
        where device_id = :device and time > now() - interval '30 days'
    )
    select p.time, cast(split_part(p.measure_name, '~', 2) as int) as horizon_minutes, p.value,
           p.model_name, p.model_version, p.issued_at
    from ml.predictions as p, newest
    where p.device_id = :device and p.issued_at = newest.issued_at
      and p.time between newest.issued_at and newest.issued_at + interval '15 minutes'
      and p.measure_name like 'iaq~%'
    order by p.time
    """,
    {"ml.predictions": ("time", "device_id", "measure_name", "value", "model_name", "model_version", "issued_at")},
    empty=NO_PREDICTIONS,
)

DEVICE_ALERTS = Query(
    """
    select rule_id, severity, state, kind, measure, started_at, fired_at,
           coalesce(resolved_at, now()) as ended_at, resolved_at is null as still_open, value, "limit", message
    from ops.alert_events
    where device_id = :device and fired_at is not null
      and coalesce(resolved_at, now()) >= :start and started_at <= :end
    order by started_at
    """,
    {"ops.alert_events": ("rule_id", "device_id", "severity", "state", "kind", "measure", "started_at",
                          "fired_at", "resolved_at", "value", "limit", "message")},
    empty="no alert fired for this device in this window",
)

# ---------------------------------------------------------------- forecasting
ACCURACY_BY_DAY = Query(
    """
    select day, model_name, horizon_minutes,
           sum(mae * predictions) / nullif(sum(predictions), 0) as mae,
           sum(persistence_mae * predictions) / nullif(sum(predictions), 0) as persistence_mae,
           sum(predictions) as predictions
    from agg.forecast_accuracy
    where day >= current_date - make_interval(days => :days)
    group by day, model_name, horizon_minutes
    order by day, model_name, horizon_minutes
    """,
    {"agg.forecast_accuracy": ("day", "model_name", "horizon_minutes", "mae", "persistence_mae", "predictions")},
    empty=NO_ACCURACY,
)

BANDIT_CHOICES = Query(
    """
    select date_trunc('hour', issue_minute) as hour, arm, count(*) as choices,
           avg(reward) as mean_reward
    from ml.model_selections
    where issue_minute > now() - make_interval(days => :days)
    group by 1, 2
    order by 1, 2
    """,
    {"ml.model_selections": ("issue_minute", "arm", "reward")},
    empty=NO_PREDICTIONS,
)

# Regret of the choices whose reward is settled, against the arm with the best mean reward over
# the same span in hindsight (UCB1's pseudo-regret, estimated from the recorded rewards).
BANDIT_REGRET = Query(
    """
    with settled as (
        select issue_minute, arm, reward from ml.model_selections
        where reward is not null and issue_minute > now() - make_interval(days => :days)
    ), best as (
        select max(mean_reward) as best_reward
        from (select avg(reward) as mean_reward from settled group by arm) as arms
    ), hourly as (
        select date_trunc('hour', issue_minute) as hour, sum(best.best_reward - reward) as regret,
               count(*) as settled
        from settled, best
        group by 1
    )
    select hour, settled, regret, sum(regret) over (order by hour) as cumulative_regret
    from hourly
    order by hour
    """,
    {"ml.model_selections": ("issue_minute", "arm", "reward")},
    empty="no settled rewards yet: the bandit rewards a choice once its actual readings arrived",
)

MODEL_CANDIDATES = Query(
    """
    select candidate, model_version, trained_at, val_mae, persistence_mae, mae_ratio, is_current
    from ml.model_candidates
    order by is_current desc, trained_at desc, candidate
    limit 40
    """,
    {"ml.model_candidates": ("candidate", "model_version", "trained_at", "val_mae", "persistence_mae",
                             "mae_ratio", "is_current")},
    empty="no model trained yet: run iot_train_models (or `iot train`)",
)

# ---------------------------------------------------------------- data health
# Freshness of each layer as the warehouse records it: how old the newest row is, and for stage
# also the capture time (_ingested_at: when MongoDB received the reading).
LAYER_FRESHNESS = Query(
    """
    select 'stage: newest reading captured (_ingested_at)' as layer,
           (select max(_ingested_at) from stage.stg_sensor_readings
             where _ingested_at > now() - interval '30 days') as newest
    union all
    select 'stage: newest IAQ minute (iaq_minutely)',
           (select max(newest.time) from stage.dim_devices as d cross join lateral (
                select time from stage.iaq_minutely as i where i.device_id = d.device_id
                order by time desc limit 1) as newest)
    union all
    select 'ml: newest forecast issued (predictions)',
           (select max(issued_at) from ml.predictions where time > now() - interval '30 days')
    union all
    select 'agg: newest hour (agg_device_hourly)',
           (select max(hour) from agg.agg_device_hourly where hour > now() - interval '30 days')
    union all
    select 'curated: newest research minute',
           (select max(newest.minute) from curated.curated_research_users as u cross join lateral (
                select minute from curated.curated_research_minutely as c where c.research_id = u.research_id
                order by minute desc limit 1) as newest)
    """,
    {"stage.stg_sensor_readings": ("_ingested_at",), "stage.iaq_minutely": ("time", "device_id"),
     "stage.dim_devices": ("device_id",), "ml.predictions": ("issued_at", "time"),
     "agg.agg_device_hourly": ("hour",), "curated.curated_research_minutely": ("minute", "research_id"),
     "curated.curated_research_users": ("research_id",)},
)

# stage -> prediction: how long after its newest input minute each forecast cycle had written
FORECAST_LATENCY = Query(
    """
    select date_trunc('hour', issue_minute) as hour,
           percentile_cont(0.5) within group (order by extract(epoch from finished_at - issue_minute))
               as p50_seconds,
           percentile_cont(0.95) within group (order by extract(epoch from finished_at - issue_minute))
               as p95_seconds,
           count(*) as cycles
    from ml.forecast_runs
    where issue_minute > now() - make_interval(days => :days) and finished_at is not null
    group by 1
    order by 1
    """,
    {"ml.forecast_runs": ("issue_minute", "finished_at")},
    empty=NO_PREDICTIONS,
)

# MongoDB -> stage: seconds from capture (_ingested_at) to the reading's own time would mix in
# device clocks; the sensor-minutes captured per hour show whether the pipe is flowing. Counted in
# iaq_minutely (one row per sensor and minute, through its _ingested_at index), not in the readings
# (seven rows per minute: 0.9 s for two days at 100 sensors with only two measures).
STAGE_INFLOW = Query(
    """
    select date_trunc('hour', _ingested_at) as hour, count(*) as sensor_minutes
    from stage.iaq_minutely
    where _ingested_at > now() - make_interval(days => :days)
    group by 1
    order by 1
    """,
    {"stage.iaq_minutely": ("_ingested_at",)},
)

REJECT_REASONS = Query(
    """
    select date_trunc('hour', _ingested_at) as hour, reject_reason, count(*) as rows
    from stage.stg_rejects
    where _ingested_at > now() - make_interval(days => :days)
    group by 1, 2
    order by 1, 2
    """,
    {"stage.stg_rejects": ("_ingested_at", "reject_reason")},
    empty="nothing rejected in this window",
)

DATA_QUALITY = Query(
    """
    select table_name, expectation, column_name, count(*) as validations,
           count(*) filter (where not success) as failed, sum(unexpected_count) as unexpected_rows,
           max(validated_at) as last_validated
    from ops.data_quality_results
    where validated_at > now() - make_interval(days => :days)
    group by 1, 2, 3
    order by failed desc, table_name, expectation, column_name
    """,
    {"ops.data_quality_results": ("table_name", "expectation", "column_name", "success", "unexpected_count",
                                  "validated_at")},
    empty="no data-quality checkpoint ran in this window: switch on iot_raw_validate",
)

TASK_FAILURES = Query(
    """
    select failed_at, dag_id, task_id, run_id, try_number
    from ops.task_failures
    where failed_at > now() - make_interval(days => :days)
    order by failed_at desc
    limit 200
    """,
    {"ops.task_failures": ("failed_at", "dag_id", "task_id", "run_id", "try_number")},
    empty="no task failed in this window",
)

# ---------------------------------------------------------------- analyses
HEALTH_BY_AGE_GROUP = Query(
    """
    select month_start, age_group, user_count, avg_step_count, avg_resting_bpm, avg_sleep_bpm,
           avg_sleep_minutes_per_day
    from agg.agg_monthly_health_by_age_group
    order by month_start desc, age_group
    limit 240
    """,
    {"agg.agg_monthly_health_by_age_group": ("month_start", "age_group", "user_count", "avg_step_count",
                                             "avg_resting_bpm", "avg_sleep_bpm", "avg_sleep_minutes_per_day")},
    empty=NO_AGG,
)

RESEARCH_IDS = Query(
    "select research_id, age_group from curated.curated_research_users order by research_id",
    {"curated.curated_research_users": ("research_id", "age_group")},
    empty=NO_CURATED,
)

# seed 001's "a user's daily steps over the past month", for consenting users by research id
RESEARCH_DAILY_STEPS = Query(
    """
    select cast(date_trunc('day', minute) as date) as day, sum(steps) as steps
    from curated.curated_research_minutely
    where research_id = :research_id and minute > now() - interval '30 days'
    group by 1
    order by 1
    """,
    {"curated.curated_research_minutely": ("research_id", "minute", "steps")},
    empty="no steps of this research id in the past 30 days",
)

LATEST_READINGS = Query(
    """
    select device_id, measure_name, unit, time, value, location_description
    from agg.agg_latest_reading
    order by device_id, measure_name
    """,
    {"agg.agg_latest_reading": ("device_id", "measure_name", "unit", "time", "value", "location_description")},
)

AVERAGES_LAST_30_MIN = Query(
    """
    select device_id, measure_name, avg_value, reading_count, last_time, location_description
    from agg.agg_sensor_avg_last_30min
    order by device_id, measure_name
    """,
    {"agg.agg_sensor_avg_last_30min": ("device_id", "measure_name", "avg_value", "reading_count", "last_time",
                                       "location_description")},
    empty="no reading in the last 30 minutes: is iot_raw_extract switched on and a device sending?",
)


def analyst_engine(settings: Settings | None = None) -> sqlalchemy.Engine:
    """An engine of the analyst role whose sessions are read-only and give up after 30 s."""
    return sqlalchemy_engine(
        "analyst", settings=settings or get_settings(), pool_size=2, max_overflow=2,
        connect_args={"options": "-c default_transaction_read_only=on -c statement_timeout=30000",
                      "application_name": "iot-dashboard", "connect_timeout": 5},
    )


class Warehouse:
    """Runs the queries above as the analyst, with the catalog check that turns a missing table
    or column into an :class:`Unavailable`."""

    CATALOG_SECONDS = 30.0  # tables appear while the platform runs (first forecast, first alert pass)

    def __init__(self, engine: sqlalchemy.Engine):
        self.engine = engine
        self._catalog: dict[str, set[str]] = {}
        self._catalog_at = 0.0

    def catalog(self) -> dict[str, set[str]]:
        """``schema.table`` -> columns the analyst may select (information_schema lists only those)."""
        import sqlalchemy

        if time.monotonic() - self._catalog_at > self.CATALOG_SECONDS:
            with self.engine.connect() as conn:
                rows = conn.execute(sqlalchemy.text(
                    "select table_schema || '.' || table_name, column_name from information_schema.columns "
                    "where table_schema in ('stage', 'agg', 'curated', 'ml', 'ops')")).all()
            catalog: dict[str, set[str]] = {}
            for relation, column in rows:
                catalog.setdefault(relation, set()).add(column)
            self._catalog, self._catalog_at = catalog, time.monotonic()
        return self._catalog

    def missing(self, query: Query) -> Unavailable | None:
        catalog = self.catalog()
        for relation, columns in query.needs.items():
            if relation not in catalog:
                return Unavailable(f"{relation} does not exist yet (or is not readable by the analyst role): "
                                   + _hint(relation))
            absent = [c for c in columns if c not in catalog[relation]]
            if absent:
                return Unavailable(f"{relation} has no column {', '.join(absent)} yet: " + _hint(relation))
        return None

    def run(self, query: Query, **params) -> Result:
        import sqlalchemy

        try:
            unavailable = self.missing(query)
            if unavailable:
                return Result(unavailable=unavailable)
            started = time.perf_counter()
            with self.engine.connect() as conn:
                frame = pd.read_sql_query(sqlalchemy.text(query.sql), conn, params=params)
        except sqlalchemy.exc.OperationalError as error:  # server away, refused login, timeout
            url = self.engine.url
            kind = type(getattr(error, "orig", error)).__name__
            return Result(unavailable=Unavailable(
                f"the warehouse is not answering (PostgreSQL {url.host}:{url.port}, {kind}); "
                "the page tries again at its next refresh"))
        for column in frame.columns:  # timestamps in UTC, as the warehouse stores them
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column].dt.tz_convert("UTC")
        return Result(frame=frame, empty_message=query.empty, seconds=time.perf_counter() - started)


def _hint(relation: str) -> str:
    schema = relation.split(".", 1)[0]
    if relation.startswith("ops.alert"):
        return NO_ALERTS_TABLES
    if relation in ("ml.predictions", "ml.model_selections", "ml.forecast_runs", "ml.model_candidates"):
        return NO_PREDICTIONS
    if relation == "agg.forecast_accuracy":
        return NO_ACCURACY
    if relation == "ops.task_failures":
        return "it is created by the first failed task"
    if relation == "ops.data_quality_results":
        return "switch on iot_raw_validate"
    if schema == "curated":
        return NO_CURATED
    return NO_READINGS
