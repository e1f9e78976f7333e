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

{#- For models whose own rows do not show how far the sources were read (stg_rejects holds only
    the refused rows, so its newest row can lag far behind), the high-water mark is kept in
    ops.transform_watermarks: read here, advanced by save_watermark() after the run. -#}
{% macro watermark_since(column='_ingested_at') -%}
  {%- if is_incremental() -%}
    {{ column }} > {{ cursor_literal("select max(ingested_at) from ops.transform_watermarks where model = '"
                                     ~ this.identifier ~ "'") }}
  {%- else -%}
    true
  {%- endif -%}
{%- endmacro %}

{% macro save_watermark(sources) -%}
  insert into ops.transform_watermarks (model, ingested_at, updated_at)
  select '{{ this.identifier }}', max(m), now()
  from (
    {%- for s in sources %}
    select max(_ingested_at) as m from {{ s }}{% if not loop.last %} union all{% endif %}
    {%- endfor %}
  ) as maxima
  having max(m) is not null
  on conflict (model) do update set ingested_at = greatest(ops.transform_watermarks.ingested_at, excluded.ingested_at),
                                    updated_at = excluded.updated_at
{%- endmacro %}
