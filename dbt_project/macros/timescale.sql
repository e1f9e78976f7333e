{#- TimescaleDB support without the dbt-timescaledb adapter (it cannot be installed here).

    Which path runs is decided by the environment variable DBT_TIMESCALEDB ("true"/"false"),
    set by dbt_project.runner after checking pg_extension, so that the choice is known at parse
    time (materializations are chosen when the project is parsed) and identical for `iot
    transform`, Airflow/cosmos tasks and tests. Without the extension every model below builds
    as a plain incremental table with the same columns. -#}

{% macro timescaledb_enabled() -%}
  {{ return(env_var('DBT_TIMESCALEDB', 'false') | lower in ('true', '1', 'yes')) }}
{%- endmacro %}

{#- Materialization for hourly rollups: a continuous aggregate with TimescaleDB, otherwise an
    incremental table. -#}
{% macro rollup_materialization() -%}
  {{ return('continuous_aggregate' if timescaledb_enabled() else 'incremental') }}
{%- endmacro %}

{#- Override of dbt-postgres' CREATE TABLE AS (first build and full refresh of table and
    incremental models). For models configured with `hypertable={...}` and the extension
    present, the table is created empty, turned into a hypertable *before the first insert*
    (no data migration), compression and retention policies are attached from the model
    config, and only then filled. Temporary tables (incremental batches) are never touched.

      hypertable:
        time_column: time            # required
        chunk_interval: 1 day
        segment_by: device_id         # compression segmentby
        compress_after: 7 days        # add_compression_policy
        retain_for: null              # add_retention_policy (null = keep forever)
-#}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
  {%- set ht = config.get('hypertable', none) -%}
  {%- if ht and not temporary and timescaledb_enabled() -%}
    {%- set time_column = ht['time_column'] -%}
    create table {{ relation }} as (
      {{ sql }}
    ) with no data;
    select create_hypertable('{{ relation }}', by_range('{{ time_column }}', interval '{{ ht.get("chunk_interval", "1 day") }}'),
                             if_not_exists => true);
    {%- if ht.get('compress_after') %}
    alter table {{ relation }} set (
      timescaledb.compress,
      timescaledb.compress_orderby = '{{ time_column }} desc'
      {%- if ht.get('segment_by') %}, timescaledb.compress_segmentby = '{{ ht["segment_by"] }}'{% endif %}
    );
    select add_compression_policy('{{ relation }}', interval '{{ ht["compress_after"] }}', if_not_exists => true);
    {%- endif %}
    {%- if ht.get('retain_for') %}
    select add_retention_policy('{{ relation }}', interval '{{ ht["retain_for"] }}', if_not_exists => true);
    {%- endif %}
    insert into {{ relation }}
    {{ sql }}
    ;
  {%- else -%}
    {{ dbt.postgres__create_table_as(temporary, relation, sql) }}
  {%- endif -%}
{%- endmacro %}

{#- A TimescaleDB continuous aggregate with a refresh policy, real-time (materialized_only =
    false) so queries also see rows newer than the last refresh. Config:
      continuous_aggregate: {start_offset: 3 days, end_offset: 1 hour, schedule_interval: 30 minutes}
-#}
{% materialization continuous_aggregate, adapter='postgres' %}
  {%- set target_relation = this.incorporate(type='materialized_view') -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set policy = config.get('continuous_aggregate', {}) -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('main') -%}
    {% if existing_relation is not none and should_full_refresh() %}
      drop materialized view if exists {{ target_relation }} cascade;
    {% endif %}
    {% if existing_relation is none or should_full_refresh() %}
      create materialized view {{ target_relation }}
      with (timescaledb.continuous, timescaledb.materialized_only = false) as
      {{ sql }}
      with no data;
      select add_continuous_aggregate_policy('{{ target_relation }}',
        start_offset => interval '{{ policy.get("start_offset", "3 days") }}',
        end_offset => interval '{{ policy.get("end_offset", "1 hour") }}',
        schedule_interval => interval '{{ policy.get("schedule_interval", "30 minutes") }}',
        if_not_exists => true);
    {% else %}
      select 1;  -- exists: the refresh policy keeps it current
    {% endif %}
  {%- endcall %}

  {#- TimescaleDB shows a continuous aggregate to users as a plain view (relkind 'v'):
      COMMENT ON MATERIALIZED VIEW fails on it, COMMENT ON VIEW / COLUMN work. -#}
  {% do persist_docs(this.incorporate(type='view'), model) %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do adapter.commit() %}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
