{#- Incremental window driven by ingestion time, not event time, so late readings (old
    timestamp, new _ingested_at) are still picked up. The look-back re-reads a margin of rows
    already seen; merging them again on the natural key changes nothing. -#}
{% macro ingested_since(column='_ingested_at', relation=none) -%}
  {%- if is_incremental() -%}
    {{ column }} > (
      select coalesce(max(_ingested_at), '-infinity'::timestamptz) - interval '{{ var("lookback_minutes") }} minutes'
      from {{ relation or this }}
    )
  {%- else -%}
    true
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
