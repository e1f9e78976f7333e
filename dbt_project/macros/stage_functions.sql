{#- Helper SQL the stage models call, (re)created at the start of every run. -#}
{#- Two runs starting together would replace the same function at once ("tuple concurrently
    updated"): the lock makes them take turns (macros/model_lock.sql). -#}
{#- No timestamp parser in SQL: the extract parses device timestamps once, in Python
    (iot_core.timestamps), and stores the UTC time in raw.air_quality.ts_utc beside ts as sent. -#}
{% macro create_stage_functions() -%}
select pg_advisory_xact_lock({{ model_lock_namespace() }}, hashtext('on-run-start'));
create table if not exists ops.transform_watermarks (
    model text primary key,
    ingested_at timestamptz not null,
    updated_at timestamptz not null
);
{#- what curated_research_minutely was last built with (macros/research_consent.sql) -#}
create table if not exists stage.research_consent_applied (
    user_id text primary key,
    consent_minute timestamptz not null,
    device_ids text[] not null,
    applied_at timestamptz not null
);
comment on table stage.research_consent_applied is
    'Consent minute and devices per consenting user that curated was last built with; a change recomputes the user''s curated rows';
{#- per model and source: how far the model has read it (macros/source_window.sql) -#}
{{ source_watermark_tables() }};
drop function if exists stage.parse_device_ts(text);
{#- A jsonb text value as timestamptz, null when PostgreSQL cannot read it. Only for the small
    registry tables (device history), whose values the extract already checked; a row loaded
    before that check must not stop the build. PL/pgSQL with an exception handler is slow, so it
    never runs over readings. -#}
create or replace function stage.try_timestamptz(value text) returns timestamptz
language plpgsql stable parallel safe as $fn$
begin
  return value::timestamptz;
exception when others then
  return null;
end
$fn$;
{%- endmacro %}
