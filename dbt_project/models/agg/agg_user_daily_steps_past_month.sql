-- Seed 001's analysis: each user's daily steps over the past month (the 30 local days up to
-- today), as a view so it always ends today.
{{ config(materialized='view', tags=['daily']) }}

select d.user_id, d.day, d.steps
from {{ ref('agg_user_daily') }} as d
where d.day > (now() at time zone '{{ var("day_timezone") }}')::date - 30
