-- Heart-rate and step samples flattened to one row per sample with the sample's own
-- timestamp, with the reason a row fails the stage checks (null when it passes).
-- The bucket's _ingested_at is the cursor: a bucket re-delivered with more samples is re-read whole.
{% set tolerance = var("future_tolerance_minutes") %}
with samples as (
    select
        'heart_rates' as source_table, b._id as bucket_id, m.idx, b.device_id, m.ts as time,
        'bpm' as measure_name, m.bpm as value, m.confidence, b._ingested_at
    from {{ source('raw', 'heart_rates') }} as b
    join {{ source('raw', 'heart_rates__metrics') }} as m on m._parent_id = b._id
    union all
    select
        'steps', b._id, m.idx, b.device_id, m.ts,
        'steps', m.steps::double precision, null::double precision, b._ingested_at
    from {{ source('raw', 'steps') }} as b
    join {{ source('raw', 'steps__metrics') }} as m on m._parent_id = b._id
)

select
    samples.*,
    case
        when samples.device_id is null then 'missing_device_id'
        when devices.device_id is null then 'unknown_device'
        when samples.time is null then 'missing_ts'
        when samples.time < timestamptz '2000-01-01 00:00:00+00' then 'ts_before_2000'
        when samples.time > samples._ingested_at + interval '{{ tolerance }} minutes' then 'ts_in_future'
        when samples.value is null then 'missing_value'
        when samples.value::text in ('NaN', 'Infinity', '-Infinity') then 'not_a_number'
        when samples.measure_name = 'bpm' and (samples.value < 25 or samples.value > 250) then 'out_of_range'
        when samples.measure_name = 'steps' and (samples.value < 0 or samples.value > 400) then 'out_of_range'
        when samples.confidence is not null and (samples.confidence::text = 'NaN' or samples.confidence < 0
                                                  or samples.confidence > 3) then 'confidence_out_of_range'
    end as reject_reason
from samples
left join {{ source('raw', 'devices') }} as devices on devices.device_id = samples.device_id
