-- Readings on the minute grid of ml.predictions (seed 000's Grafana panel: IAQ against the
-- iaq~5 / iaq~10 / iaq~15 forecasts). Devices stamp readings at any second (the simulator at
-- :14 s) while predictions are issued for whole minutes, so joining stg_sensor_readings with
-- ml.predictions on time matches nothing; here each reading is averaged into its minute.
-- Filter on device_id and measure_name: they are served by stg_sensor_readings' index.
{{ config(materialized='view', tags=['daily']) }}
select
    date_trunc('minute', r.time) as time,
    r.device_id,
    r.measure_name,
    avg(r.value) as value,
    count(*) as reading_count
from {{ ref('stg_sensor_readings') }} as r
group by date_trunc('minute', r.time), r.device_id, r.measure_name
