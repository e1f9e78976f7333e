-- Install / calibration / firmware / decommission history of each device (seed 004's
-- install history), one row per event. Events failing the checks are in stg_rejects.
{{ config(materialized='table') }}

select device_id, event_ts, action, technician_id, notes, event_index
from {{ ref('int_device_history_checked') }}
where reject_reason is null
