{#- Incremental window driven by ingestion time, not event time, so late readings (old
    timestamp, new _ingested_at) are still picked up. The look-back re-reads a margin of rows
    already seen; merging them again on the natural key changes nothing. -#}
{% macro ingested_since(column='_ingested_at', relation=none) -%}
  {%- if is_incremental() -%}
    {{ column }} > {{ cursor_literal("select max(_ingested_at) from " ~ (relation or this)) }}
  {%- else -%}
    true
  {%- endif -%}
{%- endmacro %}

{#- The cursor minus the look-back, fetched when the model is compiled and written into the SQL
    as a constant: with a sub-select PostgreSQL cannot know how selective the filter is, guesses
    a third of the table and scans it whole, which made every incremental run as slow as the
    history is long. With the constant it sees the few new rows and uses the _ingested_at index. -#}
{% macro cursor_literal(max_sql) -%}
  {%- if execute -%}
    {%- set result = run_query("select coalesce(extract(epoch from (" ~ max_sql ~ ") - interval '"
                               ~ var('lookback_minutes') ~ " minutes'), 0)::double precision") -%}
    to_timestamp({{ result.columns[0].values()[0] }})
  {%- else -%}
    to_timestamp(0)
  {%- endif -%}
{%- endmacro %}

{#- The local calendar day / week / month of a timestamptz in the configured zone. -#}
{% macro local_period(period, ts) -%}
  date_trunc('{{ period }}', {{ ts }} at time zone '{{ var("day_timezone") }}')::date
{%- endmacro %}

{#- Start of the local period as a timestamptz. -#}
{% macro period_start_ts(period_date) -%}
  (({{ period_date }})::timestamp at time zone '{{ var("day_timezone") }}')
{%- endmacro %}
