-- Per-minute heart rate and steps per research id (seed 002's machine_learning_curated), for
-- users who agree to share with research and only from their consent time on. Keyed by the
-- pseudonymous research id (ops.research_id), never the user id.
--
-- Consent is followed within one run (docs/privacy.md): the pre-hook drops the rows of every user
-- whose consent or devices changed since the last build (a grant, a consent moved earlier or
-- later, a device gained or lost), the model recomputes those users' whole history from their
-- consent on, and the post-hook removes rows that no longer qualify (a withdrawal) and records
-- what was applied. Otherwise an incremental run recomputes each user's span of minutes that
-- received new samples (a span per user, not the set of minutes: matching samples to the set made
-- PostgreSQL scan the span once per touched minute, 170 s for a week's first load); a first build
-- or full refresh aggregates every sample in one pass.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['research_id', 'minute'],
    indexes=[{'columns': ['research_id', 'minute'], 'unique': True}, {'columns': ['_ingested_at']}],
    pre_hook="{{ research_consent_reset() }}",
    post_hook=[
      """
      delete from {{ this }} as c
      where not exists (
          select 1 from {{ ref('curated_research_users') }} as u
          where u.research_id = c.research_id and c.minute >= date_trunc('minute', u.share_with_research_asof)
      )
      """,
      "{{ research_consent_save() }}",
    ],
) }}

with consenting as (
    select u.user_id, {{ research_id("u.user_id") }} as research_id,
           date_trunc('minute', u.share_with_research_asof) as consent_minute, d.device_id
    from {{ ref('dim_users') }} as u
    join {{ ref('dim_devices') }} as d on d.owner_user_id = u.user_id
    where u.share_with_research_asof is not null
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

-- each user's span of touched minutes, and the whole history of users whose consent or devices
-- changed (their rows were dropped by the pre-hook)
spans as (
    select user_id, min(from_ts) as from_ts, max(to_ts) as to_ts
    from (
        select user_id, min(minute) as from_ts, max(minute) + interval '1 minute' as to_ts
        from touched
        group by user_id
        union all
        select user_id, consent_minute, 'infinity'::timestamptz
        from ({{ research_consent_changes() }}) as changed
    ) as s
    group by user_id
),
{% endif %}

heart as (
    select c.research_id, date_trunc('minute', h.time) as minute, avg(h.bpm::numeric) as avg_bpm,
           count(*) as heart_rate_samples, max(h._ingested_at) as _ingested_at
    from {{ ref('stg_heart_rate') }} as h
    join consenting as c on c.device_id = h.device_id
    {%- if is_incremental() %}
    join spans as sp on sp.user_id = c.user_id
    where h.time >= greatest(sp.from_ts, c.consent_minute) and h.time < sp.to_ts
    {%- else %}
    where h.time >= c.consent_minute
    {%- endif %}
    group by c.research_id, date_trunc('minute', h.time)
),

steps as (
    select c.research_id, date_trunc('minute', s.time) as minute, sum(s.steps) as steps,
           max(s._ingested_at) as _ingested_at
    from {{ ref('stg_steps') }} as s
    join consenting as c on c.device_id = s.device_id
    {%- if is_incremental() %}
    join spans as sp on sp.user_id = c.user_id
    where s.time >= greatest(sp.from_ts, c.consent_minute) and s.time < sp.to_ts
    {%- else %}
    where s.time >= c.consent_minute
    {%- endif %}
    group by c.research_id, date_trunc('minute', s.time)
)

select
    coalesce(h.research_id, st.research_id) as research_id,
    coalesce(h.minute, st.minute) as minute,
    round(h.avg_bpm::numeric, 1)::double precision as avg_bpm,
    coalesce(h.heart_rate_samples, 0) as heart_rate_samples,
    st.steps,
    greatest(h._ingested_at, st._ingested_at) as _ingested_at
-- every minute with a sample of either kind (in an incremental run: those in the spans)
from heart as h
full join steps as st on st.research_id = h.research_id and st.minute = h.minute
