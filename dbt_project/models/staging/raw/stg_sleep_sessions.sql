-- Sleep sessions, one row per session. A session reported again (e.g. in a later bucket) is
-- kept once: the first valid delivery wins and stays; a later, different one is recorded in
-- stg_rejects as a conflicting re-send (the same rule as every stage reading).
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['device_id', 'start_ts'],
    indexes=[{'columns': ['device_id', 'start_ts'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}

select * from (
select distinct on (device_id, start_ts)
    device_id,
    start_ts,
    end_ts,
    coalesce(duration_ms, (extract(epoch from end_ts - start_ts) * 1000)::bigint) as duration_ms,
    _ingested_at
from {{ ref('int_sleep_sessions_checked') }}
where reject_reason is null and {{ ingested_since() }}
order by device_id, start_ts, _ingested_at, bucket_id, idx) as first_delivery
{% if is_incremental() %}
where not exists (select 1 from {{ this }} as kept where kept.device_id = first_delivery.device_id
                                                     and kept.start_ts = first_delivery.start_ts)
{% endif %}
