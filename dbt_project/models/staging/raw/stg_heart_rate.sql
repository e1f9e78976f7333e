-- Heart-rate samples, one row per sample at the sample's own timestamp.
-- The first valid delivery of a device and instant wins and stays: a later, different value
-- never replaces it (stg_rejects records it as a conflicting re-send).
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['device_id', 'time'],
    hypertable={'time_column': 'time', 'chunk_interval': '7 days', 'segment_by': 'device_id',
                'compress_after': '30 days'},
    indexes=[{'columns': ['device_id', 'time'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}

{%- set source_filter = ingested_since() %}

select * from (
select distinct on (device_id, time)
    time, device_id, value as bpm, confidence, _ingested_at
from {{ ref('int_wearable_samples_checked') }}
where measure_name = 'bpm' and reject_reason is null and {{ source_filter }}
order by device_id, time, _ingested_at, bucket_id, idx) as first_delivery
{% if is_incremental() %}
where not exists (select 1 from {{ this }} as kept where kept.device_id = first_delivery.device_id
                                                     and kept.time = first_delivery.time
                                                     and {{ wearable_time_bounds('heart_rates', source_filter, 'kept.time') }})
{% endif %}
