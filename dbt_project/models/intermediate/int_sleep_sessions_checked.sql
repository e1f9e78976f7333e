-- Sleep sessions (one row per session, reported in the bucket in which the sleep ended), with
-- the reason a session fails the stage checks (null when it passes). Bounds from the data
-- contract (macros/contract.sql).
{% set duration = contract_range('sleeps.metrics.duration') %}
select
    b._id as bucket_id,
    m.idx,
    b.device_id,
    m.start_ts,
    m.end_ts,
    m.duration as duration_ms,
    b._ingested_at,
    case
        when b.device_id is null then 'missing_device_id'
        when devices.device_id is null then 'unknown_device'
        when devices.kind not in {{ contract_sql_list(contract_sender_kinds('sleeps')) }} then 'device_kind_mismatch'
        when m.start_ts is null or m.end_ts is null then 'missing_ts'
        when m.start_ts < {{ contract_min_ts() }} then 'ts_before_2000'
        when m.end_ts > b._ingested_at + {{ contract_future_tolerance() }} then 'ts_in_future'
        when m.end_ts < m.start_ts then 'end_before_start'
        when m.end_ts < b.created_at or m.end_ts > b.ended_at then 'sample_outside_bucket'
        when m.end_ts - m.start_ts > interval '{{ (duration[1] / 1000) | int }} seconds' then 'out_of_range'
        when m.duration is not null and not m.duration between {{ duration[0] | int }} and {{ duration[1] | int }}
            then 'out_of_range'
        when m.duration is not null
             and abs(m.duration - extract(epoch from m.end_ts - m.start_ts) * 1000)
                 > {{ contract_sleep_duration_slack_ms() }} then 'duration_mismatch'
    end as reject_reason
from {{ source('raw', 'sleeps') }} as b
join {{ source('raw', 'sleeps__metrics') }} as m on m._parent_id = b._id
left join {{ registered_devices() }} as devices on devices.device_id = b.device_id
