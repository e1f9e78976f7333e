-- Per-minute heart rate and steps joined per user (seed 002's machine_learning_curated), for
-- users who agreed to share with research and only from their consent time on. The post-hook
-- removes rows that no longer qualify (consent withdrawn or moved later), so the table never
-- holds data of a user who does not consent, even between incremental runs.
-- Two paths with the same result: an incremental run recomputes the minutes of each user's span
-- of minutes that received new samples; a first build or full refresh aggregates every sample in one pass
-- (matching ~1 M minutes through the `touched` set took longer than 20 minutes at 30 days).
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['user_id', 'minute'],
    indexes=[{'columns': ['user_id', 'minute'], 'unique': True}, {'columns': ['_ingested_at']}],
    post_hook="""
      delete from {{ this }} as c
      where not exists (
          select 1 from {{ ref('curated_research_users') }} as u
          where u.user_id = c.user_id and c.minute >= date_trunc('minute', u.share_with_research_asof)
      )
    """,
) }}

with consenting as (
    select u.user_id, date_trunc('minute', u.share_with_research_asof) as consent_minute, d.device_id
    from {{ ref('curated_research_users') }} as u
    join {{ ref('dim_devices') }} as d on d.owner_user_id = u.user_id
),

{% if is_incremental() %}
touched as (
    -- minutes that received new samples; each is recomputed from all its samples
    select c.user_id, date_trunc('minute', h.time) as minute
    from {{ ref('stg_heart_rate') }} as h
    join consenting as c on c.device_id = h.device_id
    where h.time >= c.consent_minute and {{ ingested_since('h._ingested_at') }}
    union
    select c.user_id, date_trunc('minute', s.time)
    from {{ ref('stg_steps') }} as s
    join consenting as c on c.device_id = s.device_id
    where s.time >= c.consent_minute and {{ ingested_since('s._ingested_at') }}
),

-- each user's span of touched minutes; every minute in it is recomputed from all its samples
-- (the untouched ones come out unchanged and are dropped before the merge). A span per user, not
-- the set of minutes: matching samples to the set made PostgreSQL scan the whole span once per
-- touched minute (170 s for the 20,600 minutes that a week's first load touches for an hour after).
spans as (
    select user_id, min(minute) as from_ts, max(minute) + interval '1 minute' as to_ts
    from touched
    group by user_id
),
{% endif %}

heart as (
    select c.user_id, date_trunc('minute', h.time) as minute, avg(h.bpm::numeric) as avg_bpm,
           count(*) as heart_rate_samples, max(h._ingested_at) as _ingested_at
    from {{ ref('stg_heart_rate') }} as h
    join consenting as c on c.device_id = h.device_id
    {%- if is_incremental() %}
    join spans as sp on sp.user_id = c.user_id
    where h.time >= greatest(sp.from_ts, c.consent_minute) and h.time < sp.to_ts
    {%- else %}
    where h.time >= c.consent_minute
    {%- endif %}
    group by c.user_id, date_trunc('minute', h.time)
),

steps as (
    select c.user_id, date_trunc('minute', s.time) as minute, sum(s.steps) as steps,
           max(s._ingested_at) as _ingested_at
    from {{ ref('stg_steps') }} as s
    join consenting as c on c.device_id = s.device_id
    {%- if is_incremental() %}
    join spans as sp on sp.user_id = c.user_id
    where s.time >= greatest(sp.from_ts, c.consent_minute) and s.time < sp.to_ts
    {%- else %}
    where s.time >= c.consent_minute
    {%- endif %}
    group by c.user_id, date_trunc('minute', s.time)
)

select
    coalesce(h.user_id, st.user_id) as user_id,
    coalesce(h.minute, st.minute) as minute,
    round(h.avg_bpm::numeric, 1)::double precision as avg_bpm,
    coalesce(h.heart_rate_samples, 0) as heart_rate_samples,
    st.steps,
    greatest(h._ingested_at, st._ingested_at) as _ingested_at
-- every minute with a sample of either kind (in an incremental run: those in the touched spans)
from heart as h
full join steps as st on st.user_id = h.user_id and st.minute = h.minute
