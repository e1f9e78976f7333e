{#- Helper SQL functions the stage models call, (re)created at the start of every run. -#}
{#- Two runs starting together would replace the same function at once ("tuple concurrently
    updated"): the lock makes them take turns (macros/model_lock.sql). -#}
{% macro create_stage_functions() -%}
select pg_advisory_xact_lock({{ model_lock_namespace() }}, hashtext('on-run-start'));
create table if not exists ops.transform_watermarks (
    model text primary key,
    ingested_at timestamptz not null,
    updated_at timestamptz not null
);
{#- stage.parse_device_ts(text): the same expression as the macro below, as a function for ad-hoc use. -#}
create or replace function stage.parse_device_ts(ts text) returns timestamptz
language sql stable parallel safe as $fn$
  select {{ parse_device_ts('ts') }}
$fn$;
{%- endmacro %}

{#- Device timestamps arrive as ISO-8601 text with an offset or as epoch seconds. Anything else
    (no zone, an impossible date such as 2024-02-30, garbage) gives null, which the stage checks
    reject with the reason "unparseable_ts"; a bad value never aborts a run. The fields are
    range-checked by the pattern (and the day against the month's length) before the cast, so
    the cast cannot raise. A plain SQL expression, not a PL/pgSQL function with an exception
    handler: it is inlined, evaluated in C, and allowed in parallel workers (measured: the
    PL/pgSQL version made the stage build about 10x slower). -#}
{% macro parse_device_ts(col) -%}
(case
    when {{ col }} ~ '^\s*-?\d{9,11}(\.\d+)?\s*$' then to_timestamp(btrim({{ col }})::double precision)
    when {{ col }} ~ '^\s*[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?\s*(Z|z|[+-](0\d|1[0-5])(:?[0-5]\d)?)\s*$'
     and substr(btrim({{ col }}), 9, 2)::int
         <= extract(day from (substr(btrim({{ col }}), 1, 7) || '-01')::date + interval '1 month - 1 day')
    then btrim({{ col }})::timestamptz
end)
{%- endmacro %}
