-- Air-quality readings in long format (seed 000 data model): one row per device, measure and
-- UTC time. Only rows passing the stage checks; the others are in stg_rejects with the reason.
-- A value, once here, stays: a later delivery of the same device, measure and instant never
-- replaces it (first valid delivery wins, macros/air_quality_checked.sql); if its value differs,
-- stg_rejects records the conflict with both values.
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

{%- set source_filter = ingested_since() %}

with checked as (
    {{ air_quality_checked(source_filter=source_filter, only_passing=true) }}
)

select c.time, c.device_id, c.measure_name, c.value, c._ingested_at
from checked as c
{% if is_incremental() %}
where not exists (
    select 1 from {{ this }} as kept
    where kept.device_id = c.device_id and kept.measure_name = c.measure_name and kept.time = c.time
      and {{ air_quality_time_bounds(source_filter, 'kept.time') }}
)
{% endif %}
