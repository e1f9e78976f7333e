-- Sleep sessions (one row per session, reported in the bucket in which the sleep ended), with
-- the reason a session fails the stage checks (null when it passes).
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
        when m.start_ts is null or m.end_ts is null then 'missing_ts'
        when m.start_ts < timestamptz '2000-01-01 00:00:00+00' then 'ts_before_2000'
        when m.end_ts > b._ingested_at + interval '{{ var("future_tolerance_minutes") }} minutes' then 'ts_in_future'
        when m.end_ts <= m.start_ts then 'end_not_after_start'
        when m.end_ts - m.start_ts > interval '24 hours' then 'out_of_range'
    end as reject_reason
from {{ source('raw', 'sleeps') }} as b
join {{ source('raw', 'sleeps__metrics') }} as m on m._parent_id = b._id
left join {{ source('raw', 'devices') }} as devices on devices.device_id = b.device_id
