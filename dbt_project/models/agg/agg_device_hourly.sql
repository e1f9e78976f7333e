-- Hourly rollup per device and measure (UTC hours). With TimescaleDB: a continuous aggregate
-- with a refresh policy (real-time), filled over the whole history (macros/timescale.sql);
-- without it: an incremental table with the same columns.
{{ config(
    materialized=rollup_materialization(),
    incremental_strategy='delete+insert',
    unique_key=['device_id', 'measure_name', 'hour'],
    continuous_aggregate={'time_column': 'hour', 'end_offset': '1 hour', 'schedule_interval': '30 minutes'},
    tags=['daily'],
    indexes=[{'columns': ['device_id', 'measure_name', 'hour'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{% if timescaledb_enabled() %}
select
    device_id,
    measure_name,
    time_bucket(interval '1 hour', time) as hour,
    min(value) as min_value,
    avg(value::numeric)::double precision as avg_value,
    max(value) as max_value,
    count(*) as reading_count,
    max(_ingested_at) as _ingested_at
from {{ ref('stg_sensor_readings') }}
group by device_id, measure_name, time_bucket(interval '1 hour', time)
{% else %}
{#- incremental: only the hours that received newly ingested readings; first build and full
    refresh: every (device, measure) series on its own (macro reading_series) -#}
{{ refuse_aggregate_full_refresh() }}
{%- if is_incremental() %}
with touched as (
    select distinct device_id, measure_name, date_trunc('hour', time) as hour
    from {{ ref('stg_sensor_readings') }}
    where {{ ingested_since() }} and {{ open_period("date_trunc('hour', time)") }}
)
select
    r.device_id,
    r.measure_name,
    date_trunc('hour', r.time) as hour,
    {{ hourly_stats('r') }}
from {{ ref('stg_sensor_readings') }} as r
where r.time >= (select min(hour) from touched) and r.time < (select max(hour) from touched) + interval '1 hour'
  and (r.device_id, r.measure_name, date_trunc('hour', r.time)) in (select device_id, measure_name, hour from touched)
group by r.device_id, r.measure_name, date_trunc('hour', r.time)
{%- else %}
with recursive {{ reading_series() }}

select s.device_id, s.measure_name, stats.*
from series as s
cross join lateral (
    select date_trunc('hour', r.time) as hour, {{ hourly_stats('r') }}
    from {{ ref('stg_sensor_readings') }} as r
    where r.device_id = s.device_id and r.measure_name = s.measure_name
    group by date_trunc('hour', r.time)
) as stats
{%- endif %}
{% endif %}

