-- Per user and local calendar month, rolled up from agg_user_daily.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'month_start'],
    tags=['monthly'],
    indexes=[{'columns': ['user_id', 'month_start'], 'unique': True}, {'columns': ['_ingested_at']}],
) }}
{{ user_period_rollup('month') }}
