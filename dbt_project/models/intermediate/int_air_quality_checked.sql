-- Air-quality payloads in long format (one row per measure) with the reason a row fails the
-- stage checks (null when it passes). Ephemeral: inlined into stg_sensor_readings and
-- stg_rejects, so both apply exactly the same rules.
with source as (
    select _id, devid, ts, iaq, temperature, humidity, pressure, voc, co2, iaq_accuracy, _ingested_at
    from {{ source('raw', 'air_quality') }}
),

long as (
    select
        s._id as source_id,
        s.devid as device_id,
        s.ts as sent_ts,
        {{ parse_device_ts('s.ts') }} as time,
        m.measure_name,
        m.value,
        s._ingested_at
    from source as s
    cross join lateral (values
        ('iaq', s.iaq), ('temperature', s.temperature), ('humidity', s.humidity), ('pressure', s.pressure),
        ('voc', s.voc), ('co2', s.co2), ('iaq_accuracy', s.iaq_accuracy)
    ) as m(measure_name, value)
)

select
    long.*,
    case
        when long.device_id is null then 'missing_device_id'
        when devices.device_id is null then 'unknown_device'
        when long.time is null then 'unparseable_ts'
        when long.time < timestamptz '2000-01-01 00:00:00+00' then 'ts_before_2000'
        when long.time > long._ingested_at + interval '{{ var("future_tolerance_minutes") }} minutes' then 'ts_in_future'
        when long.value is null then 'missing_value'
        when long.value::text in ('NaN', 'Infinity', '-Infinity') then 'not_a_number'
        when long.value < measures.min_value or long.value > measures.max_value then 'out_of_range'
    end as reject_reason
from long
left join {{ ref('stg_sensor_measures') }} as measures on measures.measure_name = long.measure_name
left join {{ source('raw', 'devices') }} as devices on devices.device_id = long.device_id
