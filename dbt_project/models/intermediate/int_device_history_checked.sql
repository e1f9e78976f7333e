-- Install / calibration / firmware / decommission events of each device, with the reason an
-- event fails the checks (null when it passes). The extract already refuses such events
-- (iot_core.contract, devices.history); a row loaded before that check, or by another loader,
-- must not stop the build: nothing here casts a value it has not checked (a technician_id
-- "T-17" used to fail every stage build at `::integer`).
with events as (
    select
        d._id as source_id,
        d.device_id,
        e.event,
        e.ordinality::integer as event_index,
        d._ingested_at
    from {{ ranked_registry(source('raw', 'devices'), 'device_id') }} as d
    cross join lateral jsonb_array_elements(
        case when jsonb_typeof(d.history) = 'array' then d.history else '[]'::jsonb end
    ) with ordinality as e(event, ordinality)
    where d.registry_rank = 1
),

typed as (
    select
        events.*,
        case when jsonb_typeof(event) = 'object' then stage.try_timestamptz(event ->> 'ts') end as event_ts,
        case when jsonb_typeof(event) = 'object' then event ->> 'action' end as action,
        case
            when jsonb_typeof(event -> 'technician_id') = 'number' and (event ->> 'technician_id') ~ '^\d{1,18}$'
            then (event ->> 'technician_id')::bigint
        end as technician_id,
        case when jsonb_typeof(event -> 'notes') = 'string' then event ->> 'notes' end as notes
    from events
)

select
    typed.*,
    case
        when jsonb_typeof(event) <> 'object' then 'nested_junk'
        when event ->> 'ts' is null then 'missing_ts'
        when event_ts is null then 'unparseable_ts'
        when event_ts < {{ contract_min_ts() }} then 'ts_before_2000'
        when event_ts > _ingested_at + {{ contract_future_tolerance() }} then 'ts_in_future'
        when action is null or action not in {{ contract_sql_list(contract_choices('devices.history.action')) }}
            then 'out_of_range'
        when coalesce(jsonb_typeof(event -> 'technician_id'), 'null') <> 'null' and technician_id is null
            then 'wrong_type'
        when coalesce(jsonb_typeof(event -> 'notes'), 'null') not in ('null', 'string') then 'wrong_type'
    end as reject_reason
from typed
