"""A warehouse for the dashboard's tests and benchmark: the relations built by the real dbt
project (on empty raw tables), the ``ml`` and ``ops`` tables made by their own modules' DDL, then
filled with generated rows ending now, by SQL on the server.

What it writes, for ``sensors`` air-quality sensors over ``days`` days (one IAQ and one CO2
reading a minute each): ``stage.dim_devices``, ``stage.stg_sensor_readings``,
``stage.iaq_minutely`` and ``agg.agg_device_hourly`` (whole span), ``stage.stg_rejects`` (about 0.5 %),
``ml.predictions`` (15 horizons a minute over the last ``prediction_days``), ``ml.forecast_runs``,
``ml.model_selections``, ``ml.model_candidates``, ``agg.forecast_accuracy`` (per day, model, device,
horizon), ``agg.agg_monthly_health_by_age_group``, ``curated`` research rows of ``users`` consenting
users, ``ops.task_failures``, ``ops.data_quality_results`` and, when ``alerts`` is set,
``ops.alert_events`` as the alerts package creates it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from iot_core.connections import pg_connect
from iot_core.settings import Settings

MODELS = ("persistence", "ridge", "lightgbm", "mlp")

def build_relations(settings: Settings, log: Callable[[str], None] = print) -> None:
    """Empty raw tables, then ``dbt run`` of every model: stage, agg and curated exist in dbt's
    shapes (columns, indexes, views), with no rows."""
    from dbt_project.runner import run_dbt
    from ml.schema import ensure_schema
    from tests.dbt_project.raw_fixture import create_raw_tables

    with pg_connect("loader", settings=settings) as conn:
        create_raw_tables(conn)
    with pg_connect("transformer", settings=settings) as conn:
        ensure_schema(conn)
    started = time.monotonic()
    result = run_dbt(["run"], settings=settings)
    if not result.success:
        raise RuntimeError(f"dbt run failed: {result.failed_nodes()} {result.exception or ''}")
    log(f"dbt run on empty raw: {time.monotonic() - started:.0f} s")


def ops_tables(settings: Settings, alerts: bool = True) -> None:
    """The ops tables the dashboard reads, by the DDL of the modules that own them."""
    from alerts.schema import ensure_schema as ensure_alert_tables
    from quality.checkpoint import DDL as QUALITY_DDL
    from quality.checkpoint import analyst_grants as quality_grants

    with pg_connect("transformer", settings=settings) as conn:
        # ops.task_failures comes with the warehouse init (warehouse/init/02_warehouse_schemas.sql)
        conn.execute(QUALITY_DDL)
        for statement in quality_grants(settings):
            conn.execute(statement)
        if alerts:
            conn.commit()
            ensure_alert_tables(conn, settings)


def fill(settings: Settings, sensors: int = 6, days: float = 1.0, prediction_days: float = 0.25, users: int = 5,
         alerts: bool = True, log: Callable[[str], None] = print) -> dict[str, int]:
    """Generated rows ending now (see the module text). Returns rows per table."""
    ops_tables(settings, alerts)
    minutes = int(days * 1440)
    prediction_minutes = int(prediction_days * 1440)
    counts: dict[str, int] = {}
    with pg_connect("transformer", settings=settings, autocommit=True) as conn:
        conn.execute("set jit = off")

        def run(label: str, sql: str, params: dict | None = None) -> None:
            started = time.monotonic()
            cur = conn.execute(sql, params or {})
            counts[label] = counts.get(label, 0) + max(cur.rowcount, 0)
            log(f"  {label:<40} {cur.rowcount:>11,} rows  {time.monotonic() - started:6.1f} s")

        p = {"sensors": sensors, "minutes": minutes, "pminutes": prediction_minutes, "users": users}
        conn.execute("create temporary table now_minute as select date_trunc('minute', now()) as t")
        run("stage.dim_devices", """
            insert into stage.dim_devices (device_id, kind, latitude, longitude, location_description, building,
                                           floor, room, is_active, history_event_count)
            select 'aq-' || lpad(i::text, 4, '0'), 'air_quality', 51.50 + (i %% 10) * 0.0004,
                   -0.12 + (i / 10) * 0.0006, 'sensor ' || i, 'hq', ((i / 10) %% 5)::text, 'room-' || (i %% 10), true, 1
            from generate_series(1, %(sensors)s) as i""", p)
        # one day per statement: the progress shows, and no single statement holds the whole span
        for day in range(0, minutes, 1440):
            q = {**p, "from": day, "to": min(day + 1440, minutes)}
            run("stage.stg_sensor_readings", """
                insert into stage.stg_sensor_readings (time, device_id, measure_name, value, _ingested_at)
                select t, d, m, case m
                    when 'iaq' then 90 + 45 * sin(extract(epoch from t) / 5400 + i) + 8 * sin(extract(epoch from t) / 600)
                    else 650 + 250 * sin(extract(epoch from t) / 7200 + i) end,
                    t + interval '14 seconds'
                from generate_series(1, %(sensors)s) as i,
                     lateral (select 'aq-' || lpad(i::text, 4, '0') as d) as dev,
                     generate_series(%(from)s, %(to)s - 1) as k,
                     lateral (select (select t from now_minute) - (%(minutes)s - k) * interval '1 minute'
                              + interval '14 seconds' as t) as ts,
                     unnest(array['iaq', 'co2']) as m""", q)
        run("stage.iaq_minutely", """
            insert into stage.iaq_minutely (time, device_id, iaq, is_interpolated, _ingested_at)
            select date_trunc('minute', time), device_id, value, false, _ingested_at
            from stage.stg_sensor_readings where measure_name = 'iaq'""")
        run("agg.agg_device_hourly", """
            insert into agg.agg_device_hourly (device_id, measure_name, hour, min_value, avg_value, max_value,
                                               reading_count, _ingested_at)
            select device_id, measure_name, date_trunc('hour', time), min(value), avg(value), max(value), count(*),
                   max(_ingested_at)
            from stage.stg_sensor_readings group by 1, 2, 3""")
        run("stage.stg_rejects", """
            insert into stage.stg_rejects (reject_id, source_table, source_id, device_id, time, measure_name,
                                           value, reject_reason, _ingested_at)
            select md5('r' || device_id || time || measure_name), 'raw.air_quality', device_id || time, device_id,
                   time, measure_name, -1,
                   (array['out_of_range', 'not_a_number', 'ts_in_future', 'conflicting_resend'])[1 + (hashtext(time || device_id) & 3)],
                   _ingested_at
            from stage.stg_sensor_readings
            where measure_name = 'iaq' and hashtext(device_id || time::text) %% 200 = 0""")
        run("ml.predictions", """
            insert into ml.predictions (time, device_id, measure_name, value, model_name, model_version, issued_at)
            select f.time, a.device_id, 'iaq~' || h,
                   90 + 45 * sin(extract(epoch from f.time) / 5400 + i) + 8 * sin(extract(epoch from f.time) / 600)
                       + h * 0.6 * sin(extract(epoch from a.time) / 300 + h),
                   (array['persistence', 'ridge', 'lightgbm', 'mlp'])[1 + (extract(epoch from a.time)::bigint / 60 %% 4)],
                   '1', a.time
            from stage.iaq_minutely as a, generate_series(1, 15) as h,
                 lateral (select a.time + h * interval '1 minute' as time,
                                 cast(substr(a.device_id, 4) as int) as i) as f
            where a.time > (select t from now_minute) - %(pminutes)s * interval '1 minute'""", p)
        run("ml.forecast_runs", """
            insert into ml.forecast_runs (issue_minute, model_name, model_version, devices_predicted,
                                          devices_skipped, rows_written, started_at, finished_at)
            select m, 'ridge', '1', %(sensors)s, 0, 15 * %(sensors)s, m + interval '3 seconds',
                   m + interval '5 seconds' + (extract(minute from m)::int %% 7) * interval '1 second'
            from generate_series((select t from now_minute) - %(pminutes)s * interval '1 minute',
                                 (select t from now_minute), interval '1 minute') as m""", p)
        run("ml.model_selections", """
            insert into ml.model_selections (issue_minute, arm, model_version, chosen_at, reward, model_mae,
                                             persistence_mae, n_points, settled_at)
            select m, arm, '1', m, case when m < (select t from now_minute) - interval '15 minutes'
                                        then 1 - mae / 6.0 end, mae, 6.0, %(sensors)s, m + interval '15 minutes'
            from generate_series((select t from now_minute) - least(%(minutes)s, 10080) * interval '1 minute',
                                 (select t from now_minute), interval '1 minute') as m,
                 lateral (select (array['persistence', 'ridge', 'lightgbm', 'mlp'])[
                     case when extract(epoch from m)::bigint / 60 %% 10 < 7 then 2
                          else 1 + extract(epoch from m)::bigint / 60 %% 4 end]
                     as arm) as a,
                 lateral (select case a.arm when 'persistence' then 6.0 when 'ridge' then 3.1
                                            when 'lightgbm' then 3.6 else 3.9 end as mae) as e""", p)
        run("ml.model_candidates", """
            insert into ml.model_candidates (registered_model, model_version, candidate, trained_at, val_mae,
                                             persistence_mae, mae_ratio, is_current)
            select 'iaq_forecast', v::text, c, now() - interval '2 days', r * 6.0, 6.0, r, true
            from unnest(array['persistence', 'ridge', 'lightgbm', 'mlp'], array[1.0, 0.52, 0.6, 0.65])
                 with ordinality as x(c, r, v)""")
        run("agg.forecast_accuracy", """
            insert into agg.forecast_accuracy (day, model_name, model_version, device_id, horizon_minutes,
                                               predictions, mae, rmse, bias, persistence_mae, mae_ratio, computed_at)
            select day, mo, '1', 'aq-' || lpad(i::text, 4, '0'), h, 360, mae, mae * 1.25, 0.1, pm, mae / pm, now()
            from generate_series(current_date - ceil(%(minutes)s / 1440.0)::int, current_date, interval '1 day') as day,
                 generate_series(1, %(sensors)s) as i, generate_series(1, 15) as h,
                 unnest(array['persistence', 'ridge', 'lightgbm', 'mlp'], array[1.0, 0.5, 0.58, 0.66]) as x(mo, r),
                 lateral (select 0.4 * h + 0.05 * (i %% 7) as pm) as b,
                 lateral (select pm * r * (1 + 0.1 * sin(extract(epoch from day) / 86400 + i)) as mae) as c""", p)
        run("agg.agg_monthly_health_by_age_group", """
            insert into agg.agg_monthly_health_by_age_group (month_start, age_group, user_count, avg_sleep_bpm,
                                                             avg_step_count, avg_resting_bpm, avg_sleep_minutes_per_day)
            select date_trunc('month', current_date) - (m || ' months')::interval, g, 3 + m, 52 + m, 6500 + 300 * m,
                   61 - m, 420 + 5 * m
            from generate_series(0, 2) as m, unnest(array['18-29', '30-44', '45-59', '60+']) as g""")
        run("curated.curated_research_users", """
            insert into curated.curated_research_users (research_id, age_group, gender, height_cm,
                                                        share_with_research_asof)
            select md5('research' || u), (array['18-29', '30-44', '45-59', '60+'])[1 + u %% 4], 'female', 170,
                   now() - interval '60 days'
            from generate_series(1, %(users)s) as u""", p)
        run("curated.curated_research_minutely", """
            insert into curated.curated_research_minutely (research_id, minute, avg_bpm, heart_rate_samples, steps,
                                                           _ingested_at)
            select md5('research' || u), m, 60 + 10 * sin(extract(epoch from m) / 3600), 1,
                   case when extract(hour from m) between 8 and 20 then (hashtext(u || m::text) & 31) else 0 end, m
            from generate_series(1, %(users)s) as u,
                 generate_series((select t from now_minute) - %(minutes)s * interval '1 minute',
                                 (select t from now_minute), interval '1 minute') as m""", p)
        run("ops.task_failures", """
            insert into ops.task_failures (dag_id, task_id, run_id, try_number, logical_date, exception, context,
                                           failed_at)
            select 'iot_agg_transform_daily', 'agg_device_daily_test', 'scheduled__' || k, 1, now() - k * interval '5 hours',
                   'DbtTestError(''unique_agg_device_daily'')', '{}', now() - k * interval '5 hours'
            from generate_series(1, 3) as k""")
        run("ops.data_quality_results", """
            insert into ops.data_quality_results (table_name, load_id, expectation, column_name, success,
                                                  element_count, unexpected_count, unexpected_percent, validated_at)
            select t, 'load-' || k, e, c, not (k %% 5 = 0 and e = 'expect_column_values_to_be_between'), 1000,
                   case when k %% 5 = 0 and e = 'expect_column_values_to_be_between' then 3 else 0 end, 0,
                   now() - k * interval '20 minutes'
            from generate_series(1, 24) as k,
                 (values ('air_quality', 'expect_column_values_to_not_be_null', 'devid'),
                         ('air_quality', 'expect_column_values_to_be_between', 'co2'),
                         ('heart_rates', 'expect_column_values_to_not_be_null', 'device_id')) as v(t, e, c)""")
        if alerts:
            run("ops.alert_events", """
                insert into ops.alert_events (rule_id, rule_version, device_id, kind, measure, severity, state,
                                              started_at, fired_at, resolved_at, value, "limit", message)
                select r, 'v1', 'aq-' || lpad(i::text, 4, '0'), k, m, s, st, now() - a, now() - a + interval '10 minutes',
                       case when st = 'resolved' then now() - a + interval '40 minutes' end, v, l, msg
                from generate_series(1, %(sensors)s) as i,
                     (values ('co2-high', 'threshold', 'co2', 'warning', 'resolved', interval '150 minutes', 1120.0,
                              1000.0, 'CO2 above 1,000 ppm for 10 minutes'),
                             ('iaq-high', 'threshold', 'iaq', 'critical', 'firing', interval '50 minutes', 160.0, 150.0,
                              'IAQ above 150 for 5 minutes')) as x(r, k, m, s, st, a, v, l, msg)
                where i %% 3 = 1 and (st = 'resolved' or i = 1)""", p)
        conn.execute("analyze")
    return counts
