-- Per user and local ISO week (Monday start), rolled up from agg_user_daily.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'week_start'],
    tags=['weekly'],
    hypertable={'time_column': 'week_start', 'chunk_interval': '52 weeks', 'segment_by': 'user_id',
                'compress_after': '52 weeks'},
    indexes=[{'columns': ['user_id', 'week_start'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ user_period_rollup('week') }}
