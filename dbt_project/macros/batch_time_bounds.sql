{#- Conditions bounding `column` (a reading time of a stage hypertable read beside the batch, e.g.
    `kept.time`) to the times of the plausible rows a batch selects from raw, as constants found
    before the model's SQL is written.

    With TimescaleDB, a join or anti-join against the kept rows on `time = batch.time` has no
    constant bound, so every compressed chunk of history was decompressed and scanned for one new
    minute (the stage's rejects took 29 s instead of 0.5 s after compression); with the bounds only
    the chunks the batch can touch are read. Rows the checks refuse for their time (before 2000, in
    the future) are left out so they cannot widen the range. Plain PostgreSQL probes its index
    either way: there the condition is `true` and no query runs. -#}

{#- `times_sql` selects one column, `time`, of the batch's plausible times. -#}
{% macro batch_time_bounds(times_sql, column) -%}
  {%- if not (execute and timescaledb_enabled()) -%}
    true
  {%- else -%}
    {%- set span = run_query("select min(time)::text, max(time)::text from (" ~ times_sql ~ ") as batch").rows[0] -%}
    {%- if span[0] is none -%}
    false
    {%- else -%}
    ({{ column }} >= {{ sql_literal(span[0]) }}::timestamptz and {{ column }} <= {{ sql_literal(span[1]) }}::timestamptz)
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

{#- Air-quality payloads: `source_filter` is a condition on raw.air_quality's columns. -#}
{% macro air_quality_time_bounds(source_filter, column) -%}
  {{ batch_time_bounds(
       "select ts_utc as time from " ~ source('raw', 'air_quality')
       ~ " where (" ~ source_filter ~ ") and ts_utc >= " ~ contract_min_ts()
       ~ " and ts_utc <= _ingested_at + " ~ contract_future_tolerance(), column) }}
{%- endmacro %}

{#- Heart-rate or step samples (`kind`: heart_rates / steps): `source_filter` is a condition on the
    bucket's `_ingested_at` (as int_wearable_samples_checked exposes it); samples outside their
    bucket are refused by the checks, so they do not widen the range either. -#}
{% macro wearable_time_bounds(kind, source_filter, column) -%}
  {{ batch_time_bounds(
       "select time from (select m.ts as time, b._ingested_at, b.created_at, b.ended_at from "
       ~ source('raw', kind) ~ " as b join " ~ source('raw', kind ~ '__metrics') ~ " as m on m._parent_id = b._id)"
       ~ " as samples where (" ~ source_filter ~ ") and time between created_at and ended_at"
       ~ " and time >= " ~ contract_min_ts()
       ~ " and time <= _ingested_at + " ~ contract_future_tolerance(), column) }}
{%- endmacro %}
