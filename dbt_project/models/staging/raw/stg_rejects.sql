-- Every row the stage checks refused, with the reason, plus the documents the extract already
-- quarantined (source_table = 'raw.quarantine'). Nothing is dropped silently.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='reject_id',
    indexes=[{'columns': ['reject_id'], 'unique': True}, {'columns': ['_ingested_at']}],
    post_hook="{{ save_watermark([source('raw', 'air_quality'), source('raw', 'heart_rates'), source('raw', 'steps'),
                                  source('raw', 'sleeps'), source('raw', 'quarantine')]) }}",
) }}

with air_quality as (
    {{ air_quality_checked(source_filter=watermark_since()) }}
),

rejects as (
    select
        'raw.air_quality' as source_table, source_id, device_id, time, measure_name, value,
        sent_ts as raw_value, reject_reason, _ingested_at
    from air_quality
    where reject_reason is not null
    union all
    select
        'raw.' || source_table || '__metrics', bucket_id || '#' || idx, device_id, time, measure_name, value,
        null, reject_reason, _ingested_at
    from {{ ref('int_wearable_samples_checked') }}
    where reject_reason is not null and {{ watermark_since() }}
    union all
    select
        'raw.sleeps__metrics', bucket_id || '#' || idx, device_id, start_ts, 'sleep_session',
        duration_ms::double precision, end_ts::text, reject_reason, _ingested_at
    from {{ ref('int_sleep_sessions_checked') }}
    where reject_reason is not null and {{ watermark_since() }}
    union all
    select
        'raw.quarantine', collection || ':' || source_id, null, null, null, null,
        left(document::text, 2000), 'quarantined_by_extract: ' || reason,
        coalesce(_ingested_at, quarantined_at)
    from {{ source('raw', 'quarantine') }}
    where {{ watermark_since('coalesce(_ingested_at, quarantined_at)') }}
)

select distinct on (reject_id)
    md5(source_table || '|' || coalesce(source_id, '') || '|' || coalesce(measure_name, '')) as reject_id,
    source_table, source_id, device_id, time, measure_name, value, raw_value, reject_reason,
    _ingested_at
from rejects
order by reject_id, _ingested_at desc
