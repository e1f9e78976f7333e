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
    {{ air_quality_checked(source_filter=ingested_since(), only_passing=true) }}
)

select time, device_id, measure_name, value, _ingested_at
from checked
where reject_reason is null
