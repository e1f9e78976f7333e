{#- Helper SQL functions the stage models call, (re)created at the start of every run. -#}
{% macro create_stage_functions() -%}
{#- Device timestamps arrive as ISO-8601 text with an offset or as epoch seconds. Anything else
    (or an impossible date such as 2024-02-30) gives null, which the stage checks reject with
    the reason "unparseable_ts"; a bad value never aborts a run. The regex fast path keeps the
    exception handler (a sub-transaction) off the common path. -#}
create or replace function stage.parse_device_ts(ts text) returns timestamptz
language plpgsql immutable parallel safe as $fn$
begin
  if ts is null then
    return null;
  elsif ts ~ '^\s*-?\d{9,11}(\.\d+)?\s*$' then
    return to_timestamp(ts::double precision);
  elsif ts ~ '^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)\s*$' then
    begin
      return ts::timestamptz;
    exception when others then
      return null;
    end;
  end if;
  return null;  -- no zone given or not a timestamp at all: ambiguous, so rejected
end
$fn$;
{%- endmacro %}
