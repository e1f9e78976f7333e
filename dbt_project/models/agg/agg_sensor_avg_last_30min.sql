-- Seed 004's view: average of each sensor measure over the last 30 minutes.
{{ config(materialized='view', tags=['daily']) }}

select
    r.device_id,
    r.measure_name,
    avg(r.value) as avg_value,
    count(*) as reading_count,
    min(r.time) as first_time,
    max(r.time) as last_time,
    d.location_description
from {{ ref('stg_sensor_readings') }} as r
join {{ ref('dim_devices') }} as d on d.device_id = r.device_id
where r.time > now() - interval '30 minutes'
group by r.device_id, r.measure_name, d.location_description
