-- Heart-rate and step samples flattened to one row per sample with the sample's own
-- timestamp, with the reason a row fails the stage checks (null when it passes). Every bound
-- comes from the data contract (macros/contract.sql).
-- The bucket's _ingested_at is the cursor: a bucket re-delivered with more samples is re-read whole.
{% set bpm = contract_range('heart_rates.metrics.bpm') %}
{% set confidence = contract_range('heart_rates.metrics.confidence') %}
{% set steps = contract_range('steps.metrics.steps') %}
with samples as (
    select
        'heart_rates' as source_table, b._id as bucket_id, m.idx, b.device_id, m.ts as time,
        'bpm' as measure_name, m.bpm as value, m.confidence, b.created_at, b.ended_at, b._ingested_at
    from {{ source('raw', 'heart_rates') }} as b
    join {{ source('raw', 'heart_rates__metrics') }} as m on m._parent_id = b._id
    union all
    select
        'steps', b._id, m.idx, b.device_id, m.ts,
        'steps', m.steps::double precision, null::double precision, b.created_at, b.ended_at, b._ingested_at
    from {{ source('raw', 'steps') }} as b
    join {{ source('raw', 'steps__metrics') }} as m on m._parent_id = b._id
)

select
    samples.source_table, samples.bucket_id, samples.idx, samples.device_id, samples.time,
    samples.measure_name, samples.value, samples.confidence, samples._ingested_at,
    case
        when samples.device_id is null then 'missing_device_id'
        when devices.device_id is null then 'unknown_device'
        when samples.source_table = 'heart_rates'
             and devices.kind not in {{ contract_sql_list(contract_sender_kinds('heart_rates')) }}
            then 'device_kind_mismatch'
        when samples.source_table = 'steps'
             and devices.kind not in {{ contract_sql_list(contract_sender_kinds('steps')) }}
            then 'device_kind_mismatch'
        when samples.time is null then 'missing_ts'
        when samples.time < {{ contract_min_ts() }} then 'ts_before_2000'
        when samples.time > samples._ingested_at + {{ contract_future_tolerance() }} then 'ts_in_future'
        when samples.time < samples.created_at or samples.time > samples.ended_at then 'sample_outside_bucket'
        when samples.value is null then 'missing_value'
        when samples.value::text in ('NaN', 'Infinity', '-Infinity') then 'not_a_number'
        when samples.measure_name = 'bpm' and not samples.value between {{ bpm[0] }} and {{ bpm[1] }}
            then 'out_of_range'
        when samples.measure_name = 'steps' and not samples.value between {{ steps[0] }} and {{ steps[1] }}
            then 'out_of_range'
        when samples.confidence is not null and (samples.confidence::text = 'NaN'
                                                  or not samples.confidence between {{ confidence[0] }} and {{ confidence[1] }})
            then 'confidence_out_of_range'
    end as reject_reason
from samples
left join {{ registered_devices() }} as devices on devices.device_id = samples.device_id
