-- Per air-quality device, measure and local month: min, avg, max, p95 and count of readings.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['device_id', 'measure_name', 'month_start'],
    tags=['monthly'],
    hypertable={'time_column': 'month_start', 'chunk_interval': '52 weeks', 'segment_by': 'device_id',
                'compress_after': '52 weeks'},
    indexes=[{'columns': ['device_id', 'measure_name', 'month_start'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ device_period_stats('month') }}
