-- User dimension: demographics with the age group of seed 001's analysis and the consent
-- dates of seed 002. The e-mail address stays in raw (not needed downstream).
{{ config(materialized='table', indexes=[{'columns': ['user_id'], 'unique': True}]) }}

select
    user_id,
    age,
    {{ age_group('age') }} as age_group,
    gender,
    height as height_cm,
    dob,
    created_at,
    share_with_research_asof,
    share_with_public_asof,
    share_with_friends_asof,
    case when jsonb_typeof(devices) = 'array' then jsonb_array_length(devices) else 0 end as device_count
from {{ source('raw', 'users') }}
where user_id is not null
