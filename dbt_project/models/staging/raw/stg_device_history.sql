-- Install / calibration / firmware / decommission history of each device (seed 004's
-- install history), one row per event.
{{ config(materialized='table') }}

select
    d.device_id,
    (e.event ->> 'ts')::timestamptz as event_ts,
    e.event ->> 'action' as action,
    (e.event ->> 'technician_id')::integer as technician_id,
    e.event ->> 'notes' as notes,
    e.ordinality::integer as event_index
from {{ source('raw', 'devices') }} as d
cross join lateral jsonb_array_elements(
    case when jsonb_typeof(d.history) = 'array' then d.history else '[]'::jsonb end
) with ordinality as e(event, ordinality)
