-- Per air-quality device, measure and local month: min, avg, max, p95 and count of readings.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['device_id', 'measure_name', 'month_start'],
    tags=['monthly'],
    indexes=[{'columns': ['device_id', 'measure_name', 'month_start'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ device_period_stats('month') }}
