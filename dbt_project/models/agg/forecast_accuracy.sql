-- Forecast error by model, version, horizon, device and local day (DESIGN §4): every prediction
-- whose actual value has arrived in stage.iaq_minutely, next to the persistence forecast issued at
-- the same minute (the actual at issued_at), so each error reads as a ratio to the baseline.
-- Only minutes with a reading are scored: a minute stage filled in by interpolation is not an
-- actual (for a sensor reporting every 5-15 minutes most minutes are).
-- Incremental: the last stored day and everything after it are recomputed (late actuals and the
-- day still in progress), older days are final.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    tags=['daily'],
    unique_key=['day', 'model_name', 'model_version', 'device_id', 'horizon_minutes'],
    indexes=[{'columns': ['day', 'model_name', 'model_version', 'device_id', 'horizon_minutes'], 'unique': True}],
) }}

{#- The forecast DAG creates ml.predictions on its first cycle; until then (e.g. the first
    `iot transform` of a fresh install) this model builds empty instead of failing. -#}
{%- set predictions = source('ml', 'predictions') -%}
{%- set predictions_exist = (load_relation(predictions) is not none) if execute else true -%}

{% if not predictions_exist %}
select
    null::date as day, null::text as model_name, null::text as model_version, null::text as device_id,
    null::int as horizon_minutes, null::bigint as predictions, null::double precision as mae,
    null::double precision as rmse, null::double precision as bias, null::double precision as persistence_mae,
    null::double precision as mae_ratio, now() as computed_at
where false
{% else %}
with scored as (
    select
        (p.time at time zone '{{ var("day_timezone") }}')::date as day,
        p.model_name,
        p.model_version,
        p.device_id,
        split_part(p.measure_name, '~', 2)::int as horizon_minutes,
        p.value - actual.iaq as error,
        issued.iaq - actual.iaq as persistence_error
    from {{ predictions }} as p
    join {{ ref('iaq_minutely') }} as actual
        on actual.device_id = p.device_id and actual.time = p.time
    left join {{ ref('iaq_minutely') }} as issued
        on issued.device_id = p.device_id and issued.time = p.issued_at
    where p.measure_name like 'iaq~%'
      and actual.iaq is not null
      and not actual.is_interpolated
    {% if is_incremental() %}
      and p.time >= (
          (select coalesce(max(day), '1970-01-01'::date) from {{ this }})::timestamp
          at time zone '{{ var("day_timezone") }}'
      )
    {% endif %}
)

select
    day,
    model_name,
    model_version,
    device_id,
    horizon_minutes,
    count(*) as predictions,
    -- averaged in numeric, whose sums are exact: a double's sum depends on the order PostgreSQL
    -- feeds the rows, and a rebuild of the same forecasts came back different in the last bit
    avg(abs(error)::numeric)::double precision as mae,
    sqrt(avg((error * error)::numeric))::double precision as rmse,
    avg(error::numeric)::double precision as bias,
    avg(abs(persistence_error)::numeric)::double precision as persistence_mae,
    (avg(abs(error)::numeric) / nullif(avg(abs(persistence_error)::numeric), 0))::double precision as mae_ratio,
    now() as computed_at
from scored
group by day, model_name, model_version, device_id, horizon_minutes
{% endif %}
