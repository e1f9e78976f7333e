-- Seed 001's analysis: average health metrics per age group and local month.
{{ config(materialized='table', tags=['monthly']) }}

select
    m.month_start,
    u.age_group,
    count(distinct m.user_id) as user_count,
    round(avg(m.avg_sleep_bpm)::numeric, 1)::double precision as avg_sleep_bpm,
    round(avg(m.avg_daily_steps)::numeric, 1)::double precision as avg_step_count,
    round(avg(m.resting_bpm)::numeric, 1)::double precision as avg_resting_bpm,
    round(avg(m.sleep_minutes / nullif(m.days_with_data, 0))::numeric, 1)::double precision
        as avg_sleep_minutes_per_day
from {{ ref('agg_user_monthly') }} as m
join {{ ref('dim_users') }} as u on u.user_id = m.user_id
group by m.month_start, u.age_group
