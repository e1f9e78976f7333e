-- Seed 004's view: the latest reading of every sensor measure, with the device's location.
-- One index probe per device and measure (lateral LIMIT 1) instead of a scan of all readings.
{{ config(materialized='view', tags=['daily']) }}

select
    d.device_id,
    m.measure_name,
    m.unit,
    latest.time,
    latest.value,
    d.location_description,
    d.building,
    d.room
from {{ ref('dim_devices') }} as d
cross join {{ ref('stg_sensor_measures') }} as m
cross join lateral (
    select r.time, r.value
    from {{ ref('stg_sensor_readings') }} as r
    where r.device_id = d.device_id and r.measure_name = m.measure_name
    order by r.time desc
    limit 1
) as latest
