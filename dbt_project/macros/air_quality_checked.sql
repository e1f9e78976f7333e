{#- Air-quality payloads in long format (one row per measure) with the reason a row fails the
    stage checks (null when it passes). Shared by stg_sensor_readings and stg_rejects so both
    apply exactly the same rules; each passes its own incremental filter, applied to the raw
    rows first. Every bound comes from the data contract (macros/contract.sql, generated from
    iot_core/contract.py); the time is the extract's ts_utc (parsed once, in Python), so there is
    no timestamp parser in SQL.

    With only_passing=true: one value per device, measure and instant, the first valid delivery
    winning (earliest _ingested_at, then _id). A later delivery with another value is a
    conflicting re-send: it never replaces the value already there, and stg_rejects records it
    with both values. Shaped for speed (it runs over every reading): payload-level checks are
    decided before the seven measures are unnested, and only instants delivered more than once
    are ranked per measure (one payload-level window sort, as the former distinct-on). -#}
{% macro air_quality_checked(source_filter='true', only_passing=false) %}
with devices as {{ registered_devices() }},

payloads as (
    select
        s._id as source_id,
        s.devid as device_id,
        s.ts as sent_ts,
        s.ts_utc as time,
        s.iaq, s.temperature, s.humidity, s.pressure, s.voc, s.co2, s.iaq_accuracy,
        s._ingested_at
    from {{ source('raw', 'air_quality') }} as s
    where {{ source_filter }}
),

payloads_checked as (
    select
        p.*,
        case
            when p.device_id is null then 'missing_device_id'
            when devices.device_id is null then 'unknown_device'
            when devices.kind is null
                 or devices.kind not in {{ contract_sql_list(contract_sender_kinds('air_quality')) }}
                then 'device_kind_mismatch'
            when p.time is null then 'unparseable_ts'
            when p.time < {{ contract_min_ts() }} then 'ts_before_2000'
            when p.time > p._ingested_at + {{ contract_future_tolerance() }} then 'ts_in_future'
        end as payload_reject_reason
    from payloads as p
    left join devices on devices.device_id = p.device_id
),

selected as (
    {% if only_passing %}
    select *, count(*) over (partition by device_id, time) as deliveries
    from payloads_checked
    where payload_reject_reason is null
    {% else %}
    select *, 1::bigint as deliveries from payloads_checked
    {% endif %}
),

long as (
    select
        p.source_id, p.device_id, p.sent_ts, p.time, m.measure_name, m.value, p._ingested_at,
        p.payload_reject_reason, p.deliveries
    from selected as p
    cross join lateral (values
        {%- for name in contract_measure_names() %}
        ('{{ name }}', p.{{ name }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as m(measure_name, value)
),

checked as (
    select
        long.source_id, long.device_id, long.sent_ts, long.time, long.measure_name, long.value,
        long._ingested_at, long.deliveries,
        coalesce(long.payload_reject_reason, case
            when long.value is null then 'missing_value'
            when long.value::text in ('NaN', 'Infinity', '-Infinity') then 'not_a_number'
            when long.value < measures.min_value or long.value > measures.max_value then 'out_of_range'
        end) as reject_reason
    from long
    left join {{ contract_measures('measures') }} on measures.measure_name = long.measure_name
)

{% if only_passing %}
select source_id, device_id, sent_ts, time, measure_name, value, _ingested_at, reject_reason
from checked
where reject_reason is null and deliveries = 1
union all
(
    select distinct on (device_id, measure_name, time)
        source_id, device_id, sent_ts, time, measure_name, value, _ingested_at, reject_reason
    from checked
    where reject_reason is null and deliveries > 1
    order by device_id, measure_name, time, _ingested_at, source_id
)
{% else %}
select source_id, device_id, sent_ts, time, measure_name, value, _ingested_at, reject_reason
from checked
{% endif %}
{% endmacro %}
