-- Per user and local day: steps, resting / average / sleeping heart rate and sleep minutes.
-- A sleep session crossing midnight counts towards both days, split at local midnight.
-- Incremental runs recompute the (user, day) pairs that received new rows; a first build or full
-- refresh aggregates all samples in one pass (same SQL without the touched-pair filters).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'day'],
    tags=['daily'],
    hypertable={'time_column': 'day', 'chunk_interval': '30 days', 'segment_by': 'user_id',
                'compress_after': '90 days'},
    indexes=[{'columns': ['user_id', 'day'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ refuse_aggregate_full_refresh() }}

with owned as (
    select device_id, owner_user_id as user_id
    from {{ ref('dim_devices') }}
    where owner_user_id is not null
),

sleep_parts as (
    -- each session cut into the local days it covers
    select
        o.user_id,
        s.device_id,
        parts.day,
        greatest(s.start_ts, {{ period_start_ts('parts.day') }}) as part_start,
        least(s.end_ts, {{ period_start_ts('parts.day + 1') }}) as part_end,
        s._ingested_at
    from {{ ref('stg_sleep_sessions') }} as s
    join owned as o on o.device_id = s.device_id
    cross join lateral (
        select g::date as day
        from generate_series({{ local_period('day', 's.start_ts') }}, {{ local_period('day', 's.end_ts') }},
                             interval '1 day') as g
    ) as parts
),

{% if is_incremental() %}
touched as (
    select * from (
    select o.user_id, {{ local_period('day', 'h.time') }} as day
    from {{ ref('stg_heart_rate') }} as h join owned as o on o.device_id = h.device_id
    where {{ ingested_since('h._ingested_at') }}
    union
    select o.user_id, {{ local_period('day', 'st.time') }}
    from {{ ref('stg_steps') }} as st join owned as o on o.device_id = st.device_id
    where {{ ingested_since('st._ingested_at') }}
    union
    select user_id, day from sleep_parts
    where {{ ingested_since('sleep_parts._ingested_at') }}
    ) as t
    where {{ open_period(period_start_ts('t.day')) }}
),

bounds as (
    -- time range of the touched days: lets the sample scans use the (device_id, time) index
    select min({{ period_start_ts('day') }}) as from_ts, max({{ period_start_ts('day + 1') }}) as to_ts
    from touched
),
{% endif %}

heart as (
    -- samples of touched (user, day) pairs, matched by equality on the computed local day (a
    -- range join per day would compare every day with every sample of the device)
    select
        o.user_id,
        {{ local_period('day', 'h.time') }} as day,
        h.bpm,
        h._ingested_at,
        asleep.is_sleeping is not null as is_sleeping
    from {{ ref('stg_heart_rate') }} as h
    join owned as o on o.device_id = h.device_id
    {%- if is_incremental() %}
    cross join bounds
    {%- endif %}
    left join lateral (
        -- sessions of one device do not overlap: the latest one starting before the sample is
        -- the only candidate (one index probe per owned device)
        select true as is_sleeping
        from owned as o2
        cross join lateral (
            select s.end_ts from {{ ref('stg_sleep_sessions') }} as s
            where s.device_id = o2.device_id and s.start_ts <= h.time
            order by s.start_ts desc
            limit 1
        ) as last_sleep
        where o2.user_id = o.user_id and last_sleep.end_ts > h.time
        limit 1
    ) as asleep on true
    {%- if is_incremental() %}
    where h.time >= bounds.from_ts and h.time < bounds.to_ts
      and (o.user_id, {{ local_period('day', 'h.time') }}) in (select user_id, day from touched)
    {%- endif %}
),

heart_daily as (
    select
        user_id,
        day,
        avg(bpm::numeric) as avg_bpm,
        -- resting heart rate: 10th percentile of the awake samples (robust to short dips)
        percentile_cont(0.1) within group (order by bpm) filter (where not is_sleeping) as resting_bpm,
        avg(bpm::numeric) filter (where is_sleeping) as avg_sleep_bpm,
        count(*) as heart_rate_samples,
        count(*) filter (where is_sleeping) as sleep_heart_rate_samples,
        max(_ingested_at) as _ingested_at
    from heart
    group by user_id, day
),

steps_daily as (
    select o.user_id, {{ local_period('day', 'st.time') }} as day, sum(st.steps) as steps,
           max(st._ingested_at) as _ingested_at
    from {{ ref('stg_steps') }} as st
    join owned as o on o.device_id = st.device_id
    {%- if is_incremental() %}
    cross join bounds
    where st.time >= bounds.from_ts and st.time < bounds.to_ts
      and (o.user_id, {{ local_period('day', 'st.time') }}) in (select user_id, day from touched)
    {%- endif %}
    group by o.user_id, {{ local_period('day', 'st.time') }}
),

sleep_daily as (
    select
        sp.user_id,
        sp.day,
        round((sum(extract(epoch from sp.part_end - sp.part_start)) / 60)::numeric, 1)::double precision
            as sleep_minutes,
        max(sp._ingested_at) as _ingested_at
    from sleep_parts as sp
    {%- if is_incremental() %}
    where (sp.user_id, sp.day) in (select user_id, day from touched)
    {%- endif %}
    group by sp.user_id, sp.day
),

days as (
    {%- if is_incremental() %}
    select distinct user_id, day from touched
    {%- else %}
    -- every (user, day) with a sample or a sleep session
    select user_id, day from heart_daily
    union
    select user_id, day from steps_daily
    union
    select user_id, day from sleep_daily
    {%- endif %}
)

select
    t.user_id,
    t.day,
    coalesce(st.steps, 0) as steps,
    round(h.resting_bpm::numeric, 1)::double precision as resting_bpm,
    round(h.avg_bpm::numeric, 1)::double precision as avg_bpm,
    coalesce(sl.sleep_minutes, 0) as sleep_minutes,
    round(h.avg_sleep_bpm::numeric, 1)::double precision as avg_sleep_bpm,
    coalesce(h.heart_rate_samples, 0) as heart_rate_samples,
    coalesce(h.sleep_heart_rate_samples, 0) as sleep_heart_rate_samples,
    greatest(h._ingested_at, st._ingested_at, sl._ingested_at) as _ingested_at
from days as t
left join heart_daily as h on h.user_id = t.user_id and h.day = t.day
left join steps_daily as st on st.user_id = t.user_id and st.day = t.day
left join sleep_daily as sl on sl.user_id = t.user_id and sl.day = t.day
