-- Heart-rate samples, one row per sample at the sample's own timestamp.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['device_id', 'time'],
    hypertable={'time_column': 'time', 'chunk_interval': '7 days', 'segment_by': 'device_id',
                'compress_after': '30 days'},
    indexes=[{'columns': ['device_id', 'time'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}

select distinct on (device_id, time)
    time, device_id, value as bpm, confidence, _ingested_at
from {{ ref('int_wearable_samples_checked') }}
where measure_name = 'bpm' and reject_reason is null and {{ ingested_since() }}
order by device_id, time, _ingested_at desc, bucket_id desc, idx desc
