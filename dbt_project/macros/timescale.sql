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

{#- Days of history a layer keeps (settings RETENTION_<LAYER>_DAYS, passed by
    dbt_project.runner as DBT_RETENTION_<LAYER>_DAYS); none = kept forever. The retention itself
    is applied outside dbt (warehouse.retention: TimescaleDB policies, or a scheduled delete on
    plain PostgreSQL); dbt only needs it to keep continuous aggregates from being refreshed over
    source rows that retention has dropped. -#}
{% macro retention_days(layer) -%}
  {%- set value = env_var('DBT_RETENTION_' ~ layer | upper ~ '_DAYS', '') | trim -%}
  {{ return(value | int if value else none) }}
{%- endmacro %}

{#- Periods of the aggregates built from stage that may still change: those starting at or after
    the stage retention horizon (now - RETENTION_STAGE_DAYS). A period starting earlier may have
    lost source rows to retention; recomputing it (for a late reading) would shrink it to what
    stage still holds, so it is final. SQL condition on `period_start` (a timestamptz); `true`
    without stage retention. The setting is at least 32 days, so such a period is over. -#}
{% macro open_period(period_start) -%}
  {%- set stage_days = retention_days('stage') -%}
  {%- if stage_days -%}
    {{ period_start }} >= now() - interval '{{ stage_days }} days'
  {%- else -%}
    true
  {%- endif -%}
{%- endmacro %}

{#- Override of dbt-postgres' CREATE TABLE AS (first build and full refresh of table and
    incremental models). For models configured with `hypertable={...}` and the extension
    present, the table is created empty, turned into a hypertable *before the first insert*
    (no data migration), compression is attached from the model config, and only then filled.
    Temporary tables (incremental batches) are never touched. Retention policies are not set
    here: warehouse.retention applies them from the settings (one place for every layer).

      hypertable:
        time_column: time            # required (timestamptz or date)
        chunk_interval: 1 day
        segment_by: device_id         # compression segmentby; also bounds the incremental deletes
        compress_after: 7 days        # add_compression_policy
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
    insert into {{ relation }}
    {{ sql }}
    ;
  {%- else -%}
    {{ dbt.postgres__create_table_as(temporary, relation, sql) }}
  {%- endif -%}
{%- endmacro %}

{#- A TimescaleDB continuous aggregate, real-time (materialized_only = false: queries also see
    rows newer than the last refresh), complete over the whole history.

    Its refresh policy covers the whole history (start_offset null) up to end_offset: TimescaleDB
    re-materializes only the regions invalidated since the last run (late readings, erasures)
    plus the new region, so a whole-history window costs what changed, and no bucket older than
    some fixed window is ever left stale (the earlier policy refreshed [now - 3 days, now - 1 h]
    only, and the view was created WITH NO DATA: all older buckets were missing, 2,520 of 6,405
    after `iot demo`). refresh_continuous_aggregate cannot run inside a transaction block, and dbt
    runs every model in one (autocommit for dbt's connection broke the table models' rename
    dance under concurrent runs), so the first fill is the policy's first run: it starts as soon
    as the model commits, and this materialization waits for it (var cagg_fill_wait_seconds,
    default 1800) so the run ends with the aggregate filled.

    The aggregate outlives its source rows: retention drops the source's chunks without
    recording them as invalidations (warehouse.retention), so no refresh recomputes those
    periods; with stage retention set (RETENTION_STAGE_DAYS) the window also starts a day after
    the retention horizon, so a reading arriving later than that cannot recompute a period from
    the little stage still holds of it. For the same reason a --full-refresh (which rebuilds from the
    source) is refused while stage retention is set, unless var allow_aggregate_history_loss is
    true.
    Config:
      continuous_aggregate: {time_column: hour, end_offset: 1 hour, schedule_interval: 30 minutes}
-#}
{% materialization continuous_aggregate, adapter='postgres' %}
  {%- set target_relation = this.incorporate(type='materialized_view') -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set policy = config.get('continuous_aggregate', {}) -%}
  {%- set rebuild = existing_relation is none or should_full_refresh() -%}
  {%- set stage_days = retention_days('stage') -%}
  {%- if existing_relation is not none and should_full_refresh() -%}
    {{ refuse_aggregate_history_loss() }}
  {%- endif -%}
  {%- set start_offset = ("interval '" ~ (stage_days - 1) ~ " days'") if stage_days else "null::interval" -%}

  {%- set end_offset = "interval '" ~ policy.get('end_offset', '1 hour') ~ "'" -%}
  {%- set schedule = "interval '" ~ policy.get('schedule_interval', '30 minutes') ~ "'" -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('main') -%}
    {% if existing_relation is not none and should_full_refresh() %}
      drop materialized view if exists {{ target_relation }} cascade;
    {% endif %}
    {% if rebuild %}
      create materialized view {{ target_relation }}
      with (timescaledb.continuous, timescaledb.materialized_only = false) as
      {{ sql }}
      with no data;
    {% endif %}
    {#- checked on every run, so a change of the retention setting reaches the policy window;
        replaced only when it differs (the job keeps its id and history otherwise) -#}
    do $policy$
    begin
      if not exists (
        select 1
        from timescaledb_information.jobs as j
        join timescaledb_information.continuous_aggregates as c on {{ cagg_job_matches('j', 'c') }}
        where c.view_schema = '{{ target_relation.schema }}' and c.view_name = '{{ target_relation.identifier }}'
          and j.proc_name = 'policy_refresh_continuous_aggregate'
          and (j.config ->> 'start_offset')::interval is not distinct from {{ start_offset }}
          and (j.config ->> 'end_offset')::interval = {{ end_offset }}
          and j.schedule_interval = {{ schedule }}
      ) then
        perform remove_continuous_aggregate_policy('{{ target_relation }}', if_exists => true);
        perform add_continuous_aggregate_policy('{{ target_relation }}',
          start_offset => {{ start_offset }}, end_offset => {{ end_offset }}, schedule_interval => {{ schedule }});
      end if;
    end
    $policy$;
  {%- endcall %}

  {#- TimescaleDB shows a continuous aggregate to users as a plain view (relkind 'v'):
      COMMENT ON MATERIALIZED VIEW fails on it, COMMENT ON VIEW / COLUMN work. -#}
  {% do persist_docs(this.incorporate(type='view'), model) %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do adapter.commit() %}
  {% if rebuild %}
    {{ wait_for_first_refresh(target_relation) }}
  {% endif %}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{#- A row of timescaledb_information.jobs (alias j) belongs to the continuous aggregate of a row of
    timescaledb_information.continuous_aggregates (alias c). TimescaleDB before 2.20 names a
    policy's hypertable by the materialization hypertable, 2.20 and later by the aggregate's view
    (upstream #7976): matching only the first never found the policy on 2.28.3, so the build
    never waited for the first fill and replaced the policy (new job id, history lost) on every
    run. -#}
{% macro cagg_job_matches(j, c) -%}
  (({{ j }}.hypertable_schema = {{ c }}.materialization_hypertable_schema
    and {{ j }}.hypertable_name = {{ c }}.materialization_hypertable_name)
   or ({{ j }}.hypertable_schema = {{ c }}.view_schema and {{ j }}.hypertable_name = {{ c }}.view_name))
{%- endmacro %}

{#- Wait until the refresh policy of a new continuous aggregate has finished its first run (it
    starts when the creating transaction commits); a warning, not a failure, when it takes longer
    than var cagg_fill_wait_seconds: the policy still completes it in the background. -#}
{% macro wait_for_first_refresh(cagg) -%}
  {%- set limit = var('cagg_fill_wait_seconds', 1800) | int -%}
  {%- set state = namespace(done=false, waited=0) -%}
  {%- set check -%}
    select s.last_run_status is not null and s.job_status <> 'Running', pg_sleep(case when s.last_run_status is null
           or s.job_status = 'Running' then 2 else 0 end) is null
    from timescaledb_information.jobs as j
    join timescaledb_information.job_stats as s on s.job_id = j.job_id
    join timescaledb_information.continuous_aggregates as c on {{ cagg_job_matches('j', 'c') }}
    where c.view_schema = '{{ cagg.schema }}' and c.view_name = '{{ cagg.identifier }}'
      and j.proc_name = 'policy_refresh_continuous_aggregate'
  {%- endset -%}
  {%- for _ in range((limit / 2) | round(0, 'ceil') | int + 1) -%}
    {%- if not state.done -%}
      {%- set rows = run_query(check).rows -%}
      {%- set state.done = rows | length > 0 and rows[0][0] -%}
      {%- set state.waited = state.waited + 2 -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if not state.done -%}
    {{ log("continuous aggregate " ~ cagg ~ ": its refresh policy has not finished the first fill after " ~ limit
           ~ " s; it goes on in the background", info=true) }}
  {%- endif -%}
{%- endmacro %}

{#- A full refresh rebuilds an aggregate from its source. Once stage retention has dropped source
    rows, that would silently shorten the aggregate's history to the retained window: refused
    with the reason, unless the caller says it accepts the loss. -#}
{% macro refuse_aggregate_history_loss() -%}
  {%- set stage_days = retention_days('stage') -%}
  {%- if stage_days and not var('allow_aggregate_history_loss', false) -%}
    {{ exceptions.raise_compiler_error(
        this ~ ": --full-refresh rebuilds this aggregate from stage, which keeps only " ~ stage_days
        ~ " days (RETENTION_STAGE_DAYS): its older periods would be lost. Run without --full-refresh, "
        ~ "or pass --vars '{allow_aggregate_history_loss: true}' to accept the loss.") }}
  {%- endif -%}
{%- endmacro %}

{#- ops.warehouse_time_series: every time-series model with its layer and time column, from the
    models' own configs (`hypertable` / `continuous_aggregate`), refreshed at the end of each dbt
    run. warehouse.retention reads it, so retention knows the tables without a second list. -#}
{% macro register_time_series_models() -%}
  {%- set rows = [] -%}
  {%- if execute -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
      {%- set cfg = node.config -%}
      {%- set time_column = (cfg.get('hypertable') or {}).get('time_column')
                            or (cfg.get('continuous_aggregate') or {}).get('time_column') -%}
      {%- if time_column -%}
        {%- do rows.append("('" ~ node.schema ~ "." ~ (node.alias or node.name) ~ "', '" ~ node.schema ~ "', '"
                           ~ time_column ~ "')") -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  -- one writer at a time (several dbt runs end together; the first CREATE would race)
  select pg_advisory_xact_lock(hashtext('ops.warehouse_time_series'));
  create table if not exists ops.warehouse_time_series (
    relation text primary key,
    layer text not null,
    time_column text not null,
    registered_at timestamptz not null default now()
  );
  {%- if rows %}
  insert into ops.warehouse_time_series (relation, layer, time_column)
  values {{ rows | join(', ') }}
  on conflict (relation) do update set layer = excluded.layer, time_column = excluded.time_column
  where (ops.warehouse_time_series.layer, ops.warehouse_time_series.time_column)
        is distinct from (excluded.layer, excluded.time_column)
  {%- endif %}
{%- endmacro %}

{#- The same guard for the incremental agg tables (both paths): called in the model SQL. -#}
{% macro refuse_aggregate_full_refresh() -%}
  {%- if execute and this is not none and should_full_refresh() and load_relation(this) is not none -%}
    {{ refuse_aggregate_history_loss() }}
  {%- endif -%}
{%- endmacro %}
