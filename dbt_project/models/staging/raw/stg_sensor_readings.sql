-- Air-quality readings in long format (seed 000 data model): one row per device, measure and
-- UTC time. Only rows passing the stage checks; the others are in stg_rejects with the reason.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['device_id', 'measure_name', 'time'],
    on_schema_change='append_new_columns',
    hypertable={'time_column': 'time', 'chunk_interval': '1 day', 'segment_by': 'device_id',
                'compress_after': '7 days'},
    indexes=[
        {'columns': ['device_id', 'measure_name', 'time'], 'unique': True},
        {'columns': ['_ingested_at']},
    ],
) }}

with checked as (
    select * from {{ ref('int_air_quality_checked') }}
    where reject_reason is null and {{ ingested_since() }}
)

-- one row per natural key: the latest delivery wins (a re-sent payload with another offset
-- spelling of the same instant is the same reading)
select distinct on (device_id, measure_name, time)
    time, device_id, measure_name, value, _ingested_at
from checked
order by device_id, measure_name, time, _ingested_at desc, source_id desc
