-- Per air-quality device, measure and local day: min, avg, max, p95 and count of readings.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['device_id', 'measure_name', 'day_start'],
    tags=['daily'],
    hypertable={'time_column': 'day_start', 'chunk_interval': '30 days', 'segment_by': 'device_id',
                'compress_after': '90 days'},
    indexes=[{'columns': ['device_id', 'measure_name', 'day_start'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ device_period_stats('day') }}
