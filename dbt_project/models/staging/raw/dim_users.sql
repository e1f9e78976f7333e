-- User dimension: demographics with the age group of seed 001's analysis and the consent
-- dates of seed 002. The e-mail address and the date of birth stay in raw (personal data that no
-- analysis needs: the age is there). One row per user_id (macros/registry.sql decides between
-- documents that share one; the others are in stg_rejects).
{{ config(materialized='table', indexes=[{'columns': ['user_id'], 'unique': True}]) }}

select
    user_id,
    age,
    {{ age_group('age') }} as age_group,
    gender,
    height as height_cm,
    created_at,
    share_with_research_asof,
    share_with_public_asof,
    share_with_friends_asof,
    case when jsonb_typeof(devices) = 'array' then jsonb_array_length(devices) else 0 end as device_count
from {{ ranked_registry(source('raw', 'users'), 'user_id') }} as u
where registry_rank = 1
