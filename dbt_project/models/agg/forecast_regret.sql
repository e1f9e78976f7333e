-- The model selection's realised regret per local day (docs/forecasting.md, "Selection"): the error
-- of the forecasts it published (the arm chosen in each round) against the best arm in hindsight
-- (the candidate with the smallest total error that day) and against persistence, all on the same
-- points. Every arm forecasts every window and is scored once that device's actuals exist
-- (ml.arm_scores), so each comparison is like for like.
-- Incremental: the last stored day onwards is recomputed (devices that settle late add to it).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    tags=['daily'],
    unique_key=['day'],
    indexes=[{'columns': ['day'], 'unique': True}],
) }}

{%- set scores = source('ml', 'arm_scores') -%}
{%- set selections = source('ml', 'model_selections') -%}
{%- set tables_exist = (load_relation(scores) is not none and load_relation(selections) is not none)
        if execute else true -%}

{% if not tables_exist %}
select
    null::date as day, null::bigint as rounds, null::bigint as device_forecasts, null::bigint as points,
    null::double precision as system_mae, null::double precision as persistence_mae, null::text as best_arm,
    null::double precision as best_arm_mae, null::double precision as regret_vs_best_arm,
    null::double precision as regret_vs_persistence, null::double precision as system_mae_ratio,
    null::jsonb as arm_mae, null::jsonb as choices, now() as computed_at
where false
{% else %}
with scores as (
    select
        (s.issue_minute at time zone '{{ var("day_timezone") }}')::date as day,
        s.issue_minute, s.arm, s.model_version, s.devices, s.abs_error_sum, s.points
    from {{ scores }} as s
    where s.points > 0
    {% if is_incremental() %}
      and s.issue_minute >= (
          (select coalesce(max(day), '1970-01-01'::date) from {{ this }})::timestamp
          at time zone '{{ var("day_timezone") }}'
      )
    {% endif %}
),

chosen as (
    select sc.*
    from scores as sc
    join {{ selections }} as m
        on m.issue_minute = sc.issue_minute and m.arm = sc.arm and m.model_version = sc.model_version
),

system as (
    select day, count(*) as rounds, sum(devices) as device_forecasts, sum(points) as points,
           -- summed in numeric (exact, so independent of the row order; see forecast_accuracy)
           sum(abs_error_sum::numeric)::double precision as abs_error
    from chosen
    group by day
),

per_arm as (
    -- an arm counts for the day when it was scored on every point the published forecasts were
    select sc.day, sc.arm, sum(sc.abs_error_sum::numeric)::double precision as abs_error, sum(sc.points) as points
    from scores as sc
    join (select distinct issue_minute from chosen) as r on r.issue_minute = sc.issue_minute
    group by sc.day, sc.arm
),

best as (
    select distinct on (p.day) p.day, p.arm, p.abs_error
    from per_arm as p
    join system as s on s.day = p.day and p.points = s.points
    order by p.day, p.abs_error, p.arm
),

choices as (
    select day, jsonb_object_agg(arm, n) as choices
    from (select day, arm, count(*) as n from chosen group by day, arm) as c
    group by day
),

arm_mae as (
    select p.day, jsonb_object_agg(p.arm, round((p.abs_error / p.points)::numeric, 4)) as arm_mae
    from per_arm as p
    join system as s on s.day = p.day and p.points = s.points
    group by p.day
)

select
    s.day,
    s.rounds,
    s.device_forecasts,
    s.points,
    s.abs_error / s.points as system_mae,
    pe.abs_error / s.points as persistence_mae,
    b.arm as best_arm,
    b.abs_error / s.points as best_arm_mae,
    (s.abs_error - b.abs_error) / s.points as regret_vs_best_arm,
    (s.abs_error - pe.abs_error) / s.points as regret_vs_persistence,
    s.abs_error / nullif(pe.abs_error, 0) as system_mae_ratio,
    a.arm_mae,
    c.choices,
    now() as computed_at
from system as s
left join best as b on b.day = s.day
left join per_arm as pe on pe.day = s.day and pe.arm = 'persistence'
left join arm_mae as a on a.day = s.day
left join choices as c on c.day = s.day
{% endif %}
