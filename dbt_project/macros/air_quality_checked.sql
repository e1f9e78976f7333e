{#- Air-quality payloads in long format (one row per measure) with the reason a row fails the
    stage checks (null when it passes). Shared by stg_sensor_readings and stg_rejects so both
    apply exactly the same rules; each passes its own incremental filter, applied to the raw
    rows first.

    Shaped for speed (it runs over every reading): the device timestamp is parsed once per
    payload (the OFFSET 0 fence stops PostgreSQL from copying the parse expression into every
    place that uses it, once per measure), payload-level checks are decided before the seven
    measures are unnested, and with only_passing=true duplicates are removed per payload
    (4.3 M payloads instead of 30 M measure rows to sort for a month of 100 sensors). -#}
{% macro air_quality_checked(source_filter='true', only_passing=false) %}
with payloads as (
    select
        s._id as source_id,
        s.devid as device_id,
        s.ts as sent_ts,
        {{ parse_device_ts('s.ts') }} as time,
        s.iaq, s.temperature, s.humidity, s.pressure, s.voc, s.co2, s.iaq_accuracy,
        s._ingested_at
    from {{ source('raw', 'air_quality') }} as s
    where {{ source_filter }}
    offset 0
),

payloads_checked as (
    select
        p.*,
        case
            when p.device_id is null then 'missing_device_id'
            when devices.device_id is null then 'unknown_device'
            when p.time is null then 'unparseable_ts'
            when p.time < timestamptz '2000-01-01 00:00:00+00' then 'ts_before_2000'
            when p.time > p._ingested_at + interval '{{ var("future_tolerance_minutes") }} minutes' then 'ts_in_future'
        end as payload_reject_reason
    from payloads as p
    left join {{ source('raw', 'devices') }} as devices on devices.device_id = p.device_id
),

selected as (
    {% if only_passing %}
    -- one payload per device and instant: the latest delivery wins (a re-sent payload with
    -- another offset spelling of the same instant is the same reading)
    select distinct on (device_id, time) *
    from payloads_checked
    where payload_reject_reason is null
    order by device_id, time, _ingested_at desc, source_id desc
    {% else %}
    select * from payloads_checked
    {% endif %}
),

long as (
    select
        p.source_id, p.device_id, p.sent_ts, p.time, m.measure_name, m.value, p._ingested_at,
        p.payload_reject_reason
    from selected as p
    cross join lateral (values
        ('iaq', p.iaq), ('temperature', p.temperature), ('humidity', p.humidity), ('pressure', p.pressure),
        ('voc', p.voc), ('co2', p.co2), ('iaq_accuracy', p.iaq_accuracy)
    ) as m(measure_name, value)
)

select
    long.source_id, long.device_id, long.sent_ts, long.time, long.measure_name, long.value, long._ingested_at,
    coalesce(long.payload_reject_reason, case
        when long.value is null then 'missing_value'
        when long.value::text in ('NaN', 'Infinity', '-Infinity') then 'not_a_number'
        when long.value < measures.min_value or long.value > measures.max_value then 'out_of_range'
    end) as reject_reason
from long
left join {{ ref('stg_sensor_measures') }} as measures on measures.measure_name = long.measure_name
{% endmacro %}
