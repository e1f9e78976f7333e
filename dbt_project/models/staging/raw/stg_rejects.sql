-- Every row the stage checks refused, with the reason, plus the documents the extract already
-- quarantined (source_table = 'raw.quarantine'), the conflicting re-sends (a later delivery of a
-- reading with another value than the one stage kept: value = the refused one, raw_value = the
-- kept one) and the registry entries stage cannot use (duplicate user or device ids, device
-- history events that do not fit the contract). Nothing is dropped silently.
-- Each time-series source is read from where this model's last committed run stopped reading
-- it (macros/source_window.sql); the registries are small and checked whole every run.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='reject_id',
    indexes=[{'columns': ['reject_id'], 'unique': True}, {'columns': ['_ingested_at']}],
    post_hook="{{ commit_source_windows() }}",
) }}

{#- the conflicts are found against the kept values; a stage model not built yet (a run that
    selected only some sources) has none, so that part waits for its first build -#}
{%- set kept = {} -%}
{%- for name in ('stg_sensor_readings', 'stg_heart_rate', 'stg_steps', 'stg_sleep_sessions') -%}
  {%- set relation = ref(name) -%}  {#- called at parse time too: the dependency orders the build #}
  {%- do kept.update({name: execute and load_relation(relation) is not none}) -%}
{%- endfor %}

{#- one window per source for the checks and the bounds of the joins to the kept rows below -#}
{%- set air_quality_window = source_window('air_quality', source('raw', 'air_quality')) %}
{%- set heart_rates_window = source_window('heart_rates', source('raw', 'heart_rates')) %}
{%- set steps_window = source_window('steps', source('raw', 'steps')) %}

with air_quality as (
    {{ air_quality_checked(source_filter=air_quality_window) }}
),

wearable_samples as (
    select *
    from {{ ref('int_wearable_samples_checked') }}
    where (source_table = 'heart_rates' and {{ heart_rates_window }})
       or (source_table = 'steps' and {{ steps_window }})
),

sleep_sessions as (
    select *
    from {{ ref('int_sleep_sessions_checked') }}
    where {{ source_window('sleeps', source('raw', 'sleeps')) }}
),

rejects as (
    select
        'raw.air_quality' as source_table, source_id, device_id, time, measure_name, value,
        sent_ts as raw_value, reject_reason, _ingested_at
    from air_quality
    where reject_reason is not null
    {%- if kept['stg_sensor_readings'] %}
    union all
    -- conflicting re-sends: valid, but another value of this device, measure and instant is kept
    select
        'raw.air_quality', a.source_id, a.device_id, a.time, a.measure_name, a.value,
        'kept ' || kept.value::text, 'conflicting_resend', a._ingested_at
    from air_quality as a
    join {{ ref('stg_sensor_readings') }} as kept
      on kept.device_id = a.device_id and kept.measure_name = a.measure_name and kept.time = a.time
     and {{ air_quality_time_bounds(air_quality_window, 'kept.time') }}
    where a.reject_reason is null and kept.value is distinct from a.value
    {%- endif %}
    union all
    select
        'raw.' || source_table || '__metrics', bucket_id || '#' || idx, device_id, time, measure_name, value,
        null, reject_reason, _ingested_at
    from wearable_samples
    where reject_reason is not null
    {%- if kept['stg_heart_rate'] %}
    union all
    select
        'raw.heart_rates__metrics', s.bucket_id || '#' || s.idx, s.device_id, s.time, s.measure_name, s.value,
        'kept ' || kept.bpm::text, 'conflicting_resend', s._ingested_at
    from wearable_samples as s
    join {{ ref('stg_heart_rate') }} as kept on kept.device_id = s.device_id and kept.time = s.time
     and {{ wearable_time_bounds('heart_rates', heart_rates_window, 'kept.time') }}
    where s.source_table = 'heart_rates' and s.reject_reason is null and kept.bpm is distinct from s.value
    {%- endif %}
    {%- if kept['stg_steps'] %}
    union all
    select
        'raw.steps__metrics', s.bucket_id || '#' || s.idx, s.device_id, s.time, s.measure_name, s.value,
        'kept ' || kept.steps::text, 'conflicting_resend', s._ingested_at
    from wearable_samples as s
    join {{ ref('stg_steps') }} as kept on kept.device_id = s.device_id and kept.time = s.time
     and {{ wearable_time_bounds('steps', steps_window, 'kept.time') }}
    where s.source_table = 'steps' and s.reject_reason is null and kept.steps::double precision is distinct from s.value
    {%- endif %}
    union all
    select
        'raw.sleeps__metrics', bucket_id || '#' || idx, device_id, start_ts, 'sleep_session',
        duration_ms::double precision, end_ts::text, reject_reason, _ingested_at
    from sleep_sessions
    where reject_reason is not null
    {%- if kept['stg_sleep_sessions'] %}
    union all
    select
        'raw.sleeps__metrics', s.bucket_id || '#' || s.idx, s.device_id, s.start_ts, 'sleep_session',
        s.duration_ms::double precision, 'kept end ' || kept.end_ts::text || ', ' || kept.duration_ms || ' ms',
        'conflicting_resend', s._ingested_at
    from sleep_sessions as s
    join {{ ref('stg_sleep_sessions') }} as kept on kept.device_id = s.device_id and kept.start_ts = s.start_ts
    where s.reject_reason is null
      and (kept.end_ts, kept.duration_ms) is distinct from (s.end_ts, coalesce(s.duration_ms, kept.duration_ms))
    {%- endif %}
    union all
    select
        'raw.quarantine', collection || ':' || source_id, null, null, null, null,
        left(document::text, 2000), 'quarantined_by_extract: ' || reason,
        coalesce(_ingested_at, quarantined_at)
    from {{ source('raw', 'quarantine') }}
    where {{ source_window('quarantine', source('raw', 'quarantine'), 'coalesce(_ingested_at, quarantined_at)') }}
    union all
    -- registries: a second document with the same natural key (the first one is kept)
    select
        'raw.users', _id, null, null, null, null, 'user_id ' || user_id || ', kept _id ' || kept_id,
        'duplicate_user_id', _ingested_at
    from {{ ranked_registry(source('raw', 'users'), 'user_id') }} as users
    where registry_rank > 1
    union all
    select
        'raw.devices', _id, device_id, null, null, null, 'device_id ' || device_id || ', kept _id ' || kept_id,
        'duplicate_device_id', _ingested_at
    from {{ ranked_registry(source('raw', 'devices'), 'device_id') }} as devices
    where registry_rank > 1
    union all
    select
        'raw.devices', source_id || '#history[' || (event_index - 1) || ']', device_id, event_ts, 'history',
        null, left(event::text, 2000), reject_reason, _ingested_at
    from {{ ref('int_device_history_checked') }}
    where reject_reason is not null
)

select distinct on (reject_id)
    md5(source_table || '|' || coalesce(source_id, '') || '|' || coalesce(measure_name, '')) as reject_id,
    source_table, source_id, device_id, time, measure_name, value, raw_value, reject_reason,
    _ingested_at
from rejects
order by reject_id, _ingested_at desc
