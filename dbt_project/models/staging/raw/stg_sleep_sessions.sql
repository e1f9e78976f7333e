-- Sleep sessions, one row per session. A session reported again (e.g. in a later bucket) is
-- kept once, the latest delivery winning.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['device_id', 'start_ts'],
    indexes=[{'columns': ['device_id', 'start_ts'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}

select distinct on (device_id, start_ts)
    device_id,
    start_ts,
    end_ts,
    coalesce(duration_ms, (extract(epoch from end_ts - start_ts) * 1000)::bigint) as duration_ms,
    _ingested_at
from {{ ref('int_sleep_sessions_checked') }}
where reject_reason is null and {{ ingested_since() }}
order by device_id, start_ts, _ingested_at desc, bucket_id desc, idx desc
