-- Per air-quality device, measure and local week: min, avg, max, p95 and count of readings.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['device_id', 'measure_name', 'week_start'],
    tags=['weekly'],
    hypertable={'time_column': 'week_start', 'chunk_interval': '52 weeks', 'segment_by': 'device_id',
                'compress_after': '52 weeks'},
    indexes=[{'columns': ['device_id', 'measure_name', 'week_start'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ device_period_stats('week') }}
