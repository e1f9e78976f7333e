-- IAQ per device on a one-minute grid for the forecasting models (docs/contracts.md §3).
-- Readings are averaged per minute; gaps of at most `iaq_max_gap_minutes` missing minutes are
-- filled by linear interpolation (is_interpolated = true); longer gaps stay missing, because
-- inventing long stretches would teach the models a signal that never existed.
-- Incremental: only the neighbourhood of newly ingested readings is recomputed (the window
-- reaches max_gap + 1 minutes either side so a gap closed by a late reading is filled).
{% set max_gap = var('iaq_max_gap_minutes') | int %}
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['device_id', 'time'],
    hypertable={'time_column': 'time', 'chunk_interval': '1 day', 'segment_by': 'device_id',
                'compress_after': '7 days'},
    indexes=[{'columns': ['device_id', 'time'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}

with changed as (
    select
        device_id,
        date_trunc('minute', min(time)) - interval '{{ max_gap + 1 }} minutes' as from_time,
        date_trunc('minute', max(time)) + interval '{{ max_gap + 2 }} minutes' as to_time
    from {{ ref('stg_sensor_readings') }}
    where measure_name = 'iaq' and {{ ingested_since() }}
    group by device_id
),

observed as (
    -- lateral: one (device_id, measure_name, time) index range per changed device. As a plain
    -- join PostgreSQL chose a hash join over every iaq reading of the history (5.5 s instead of
    -- 0.1 s at 30 days x 100 sensors), which made incremental runs grow with the history.
    select c.device_id, m.time, m.iaq, m._ingested_at
    from changed as c
    cross join lateral (
        select date_trunc('minute', r.time) as time, avg(r.value::numeric)::double precision as iaq,
               max(r._ingested_at) as _ingested_at
        from {{ ref('stg_sensor_readings') }} as r
        where r.device_id = c.device_id and r.measure_name = 'iaq' and r.time >= c.from_time and r.time < c.to_time
        group by date_trunc('minute', r.time)
    ) as m
),

with_next as (
    select
        *,
        lead(time) over by_device as next_time,
        lead(iaq) over by_device as next_iaq,
        lead(_ingested_at) over by_device as next_ingested_at
    from observed
    window by_device as (partition by device_id order by time)
),

interpolated as (
    select
        g.time,
        w.device_id,
        w.iaq + (w.next_iaq - w.iaq) * extract(epoch from g.time - w.time) / extract(epoch from w.next_time - w.time) as iaq,
        true as is_interpolated,
        greatest(w._ingested_at, w.next_ingested_at) as _ingested_at
    from with_next as w
    cross join lateral generate_series(w.time + interval '1 minute', w.next_time - interval '1 minute',
                                       interval '1 minute') as g(time)
    where w.next_time - w.time between interval '2 minutes' and interval '{{ max_gap + 1 }} minutes'
)

select time, device_id, iaq, false as is_interpolated, _ingested_at from observed
union all
select time, device_id, iaq, is_interpolated, _ingested_at from interpolated
