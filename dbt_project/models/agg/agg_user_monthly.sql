-- Per user and local calendar month, rolled up from agg_user_daily.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'month_start'],
    tags=['monthly'],
    hypertable={'time_column': 'month_start', 'chunk_interval': '52 weeks', 'segment_by': 'user_id',
                'compress_after': '52 weeks'},
    indexes=[{'columns': ['user_id', 'month_start'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ user_period_rollup('month') }}
