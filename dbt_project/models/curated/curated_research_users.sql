-- Users who agree to share their data with research (seed 002's curated customers), with coarse
-- demographics only, under their pseudonymous research id (a keyed hash of the user id:
-- ops.research_id, docs/privacy.md); never the user id, e-mail or date of birth.
{{ config(materialized='table', indexes=[{'columns': ['research_id'], 'unique': True}]) }}

select
    {{ research_id("user_id") }} as research_id,
    age_group,
    gender,
    height_cm,
    share_with_research_asof
from {{ ref('dim_users') }}
where share_with_research_asof is not null
