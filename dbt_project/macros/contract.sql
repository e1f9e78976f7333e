{#- GENERATED from iot_core/contract.py by `python -m dbt_project.contract_macros --write`:
    do not edit by hand. tests/iot_core/test_contract_drift.py fails while this file and the contract
    disagree. What each value means: iot_core/contract.py and docs/contracts.md. -#}

{#- The earliest acceptable time (a SQL timestamptz literal). -#}
{% macro contract_min_ts() -%}
timestamptz '2000-01-01T00:00:00+00:00'
{%- endmacro %}

{#- How far after its receipt a measurement time may lie (a SQL interval literal). -#}
{% macro contract_future_tolerance() -%}
interval '3600 seconds'
{%- endmacro %}

{#- The oldest plausible age in years. -#}
{% macro contract_max_age_years() -%}
130
{%- endmacro %}

{#- How far a sleep's reported duration may differ from end_ts - start_ts, in milliseconds. -#}
{% macro contract_sleep_duration_slack_ms() -%}
60000
{%- endmacro %}

{#- The air-quality measures in payload order, with unit and valid range (a FROM item named alias). -#}
{% macro contract_measures(alias='contract_measures') -%}
(values
        ('iaq', 1, 'index', 0::double precision, 500::double precision, 'Indoor air-quality index (Bosch BME680 scale)'),
        ('temperature', 2, '°C', -40::double precision, 85::double precision, 'Air temperature'),
        ('humidity', 3, '%RH', 0::double precision, 100::double precision, 'Relative humidity'),
        ('pressure', 4, 'kPa', 30::double precision, 110::double precision, 'Barometric pressure'),
        ('voc', 5, 'ppm', 0::double precision, 1000::double precision, 'Volatile organic compounds (breath-VOC equivalent)'),
        ('co2', 6, 'ppm', 0::double precision, 40000::double precision, 'CO2 equivalent'),
        ('iaq_accuracy', 7, 'level', 0::double precision, 3::double precision, 'Calibration state of the IAQ estimate (0 = unreliable, 3 = high)')
) as {{ alias }}(measure_name, position, unit, min_value, max_value, description)
{%- endmacro %}

{#- The measure names in payload order (a list). -#}
{% macro contract_measure_names() -%}
{{ return(['iaq', 'temperature', 'humidity', 'pressure', 'voc', 'co2', 'iaq_accuracy']) }}
{%- endmacro %}

{#- [min, max] of a bounded field, by path: contract_range('heart_rates.metrics.bpm'). -#}
{% macro contract_range(path) -%}
{{ return({'air_quality.readings.co2': [0, 40000], 'air_quality.readings.humidity': [0, 100], 'air_quality.readings.iaq': [0, 500], 'air_quality.readings.iaq_accuracy': [0, 3], 'air_quality.readings.pressure': [30, 110], 'air_quality.readings.temperature': [-40, 85], 'air_quality.readings.voc': [0, 1000], 'devices.history.technician_id': [0, 9223372036854775807], 'devices.location.lat': [-90, 90], 'devices.location.long': [-180, 180], 'heart_rates.metrics.bpm': [20, 250], 'heart_rates.metrics.confidence': [0, 3], 'sleeps.metrics.duration': [0, 86400000], 'steps.metrics.steps': [0, 400], 'users.age': [0, 130], 'users.height': [30, 272]}[path]) }}
{%- endmacro %}

{#- The allowed values of a field with choices, by path: contract_choices('devices.kind'). -#}
{% macro contract_choices(path) -%}
{{ return({'air_quality.measure_name': ['iaq', 'temperature', 'humidity', 'pressure', 'voc', 'co2', 'iaq_accuracy'], 'devices.history.action': ['INSTALLED', 'CALIBRATED', 'FIRMWARE_UPGRADED', 'DECOMMISSIONED'], 'devices.kind': ['watch', 'phone', 'air_quality'], 'users.gender': ['male', 'female', 'other']}[path]) }}
{%- endmacro %}

{#- The device kinds that may send a collection (a list). -#}
{% macro contract_sender_kinds(collection) -%}
{{ return({'air_quality': ['air_quality'], 'heart_rates': ['watch'], 'steps': ['watch', 'phone'], 'sleeps': ['watch', 'phone']}[collection]) }}
{%- endmacro %}

{#- The longest span of a bucket of a collection, in seconds. -#}
{% macro contract_bucket_span_seconds(collection) -%}
{{ return({'heart_rates': 14400, 'steps': 900, 'sleeps': 900}[collection]) }}
{%- endmacro %}

{#- A SQL list literal of strings: ('a', 'b'). -#}
{% macro contract_sql_list(values) -%}
({% for v in values %}'{{ v }}'{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
