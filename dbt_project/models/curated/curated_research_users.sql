-- Users who agreed to share their data with research (seed 002's curated customers), with
-- coarse demographics only.
{{ config(materialized='table', indexes=[{'columns': ['user_id'], 'unique': True}]) }}

select user_id, age_group, gender, height_cm, share_with_research_asof
from {{ ref('dim_users') }}
where share_with_research_asof is not null
