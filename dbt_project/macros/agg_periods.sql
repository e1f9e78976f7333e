{#- Shared SQL of the daily / weekly / monthly aggregates. Each incremental run recomputes whole
    periods that received newly ingested rows (never freezing a partial day, week or month),
    and replaces them with delete+insert on the period key. -#}

{#- Per user and local period, rolled up from agg_user_daily (weekly and monthly). Averages are
    weighted by sample counts so a week's avg_bpm equals the mean of its samples. -#}
{% macro user_period_rollup(period) %}
{{ refuse_aggregate_full_refresh() }}
with touched as (
    select distinct user_id, {{ local_period(period, period_start_ts('day')) }} as period_start
    from {{ ref('agg_user_daily') }}
    where {{ ingested_since() }}
)

select
    d.user_id,
    t.period_start as {{ period }}_start,
    sum(d.steps) as steps,
    round(avg(d.steps), 1)::double precision as avg_daily_steps,
    round(avg(d.resting_bpm)::numeric, 1)::double precision as resting_bpm,
    round((sum(d.avg_bpm * d.heart_rate_samples) / nullif(sum(d.heart_rate_samples), 0))::numeric, 1)::double precision
        as avg_bpm,
    sum(d.sleep_minutes) as sleep_minutes,
    round((sum(d.avg_sleep_bpm * d.sleep_heart_rate_samples)
           / nullif(sum(d.sleep_heart_rate_samples), 0))::numeric, 1)::double precision as avg_sleep_bpm,
    sum(d.heart_rate_samples) as heart_rate_samples,
    sum(d.sleep_heart_rate_samples) as sleep_heart_rate_samples,
    count(*) as days_with_data,
    max(d._ingested_at) as _ingested_at
from {{ ref('agg_user_daily') }} as d
join touched as t
  on t.user_id = d.user_id and {{ local_period(period, period_start_ts('d.day')) }} = t.period_start
group by d.user_id, t.period_start
{% endmacro %}

{#- Per device and measure and local period: min / avg / max / p95 / count of the readings.
    Incremental: only the periods that received newly ingested readings. First build and full
    refresh: every (device, measure) series on its own (see reading_series), so each sort covers
    one series read in index order instead of one sort of all readings spilling to disk. -#}
{% macro device_period_stats(period) %}
{{ refuse_aggregate_full_refresh() }}
{%- if is_incremental() %}
with touched as (
    select distinct device_id, measure_name, {{ local_period(period, 'time') }} as period_start
    from {{ ref('stg_sensor_readings') }}
    where {{ ingested_since() }}
      and {{ open_period(period_start_ts(local_period(period, 'time'))) }}
),

bounds as (
    select min({{ period_start_ts('period_start') }}) as from_ts,
           max({{ period_start_ts("(period_start + interval '1 " ~ period ~ "')::date") }}) as to_ts
    from touched
)

select
    r.device_id,
    r.measure_name,
    {{ local_period(period, 'r.time') }} as {{ period }}_start,
    {{ reading_stats('r') }}
from {{ ref('stg_sensor_readings') }} as r
-- readings matched to touched periods by equality on the computed local period (a range join
-- per period would compare every period with every reading of the device and measure)
cross join bounds
where r.time >= bounds.from_ts and r.time < bounds.to_ts
  and (r.device_id, r.measure_name, {{ local_period(period, 'r.time') }})
      in (select device_id, measure_name, period_start from touched)
group by r.device_id, r.measure_name, {{ local_period(period, 'r.time') }}
{%- else %}
with recursive {{ reading_series() }}

select s.device_id, s.measure_name, stats.*
from series as s
cross join lateral (
    select {{ local_period(period, 'r.time') }} as {{ period }}_start, {{ reading_stats('r') }}
    from {{ ref('stg_sensor_readings') }} as r
    where r.device_id = s.device_id and r.measure_name = s.measure_name
    group by {{ local_period(period, 'r.time') }}
) as stats
{%- endif %}
{% endmacro %}

{% macro reading_stats(r) -%}
    min({{ r }}.value) as min_value,
    -- numeric sum: exact, so the result does not depend on the scan order (re-runs are byte-identical)
    avg({{ r }}.value::numeric)::double precision as avg_value,
    max({{ r }}.value) as max_value,
    percentile_cont(0.95) within group (order by {{ r }}.value) as p95_value,
    count(*) as reading_count,
    max({{ r }}._ingested_at) as _ingested_at
{%- endmacro %}

{#- min / avg / max / count of readings (the hourly rollup has no p95). -#}
{% macro hourly_stats(r) -%}
    min({{ r }}.value) as min_value,
    avg({{ r }}.value::numeric)::double precision as avg_value,
    max({{ r }}.value) as max_value,
    count(*) as reading_count,
    max({{ r }}._ingested_at) as _ingested_at
{%- endmacro %}

{#- CTE `series` (for a WITH RECURSIVE): every (device, measure) pair present in the readings,
    found by skipping through the (device_id, measure_name, time) index, one probe per pair (a
    few hundred probes instead of a scan of all readings). Full builds aggregate per series in a
    lateral join: at 30 days x 100 sensors one sort of all 30 M readings spilled to disk and took
    about 3x longer than the 700 in-memory sorts of one series each. -#}
{% macro reading_series() -%}
series as (
    (select device_id, measure_name from {{ ref('stg_sensor_readings') }}
     order by device_id, measure_name limit 1)
    union all
    select next.device_id, next.measure_name
    from series as s
    cross join lateral (
        select r.device_id, r.measure_name
        from {{ ref('stg_sensor_readings') }} as r
        where (r.device_id, r.measure_name) > (s.device_id, s.measure_name)
        order by r.device_id, r.measure_name
        limit 1
    ) as next
)
{%- endmacro %}
