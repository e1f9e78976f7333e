{#- Per-source read windows for models whose own rows do not show how far their sources were read
    (stg_rejects holds only the refused rows, so its newest row can lag far behind).

    source_window(name, relation, column) is the filter of one source: the rows after what the
    last committed run of this model read from that source (minus the look-back), up to the
    newest row *when this run was compiled*. That upper bound is what this run reads, so it is
    what it may record: it is noted in ops.source_watermarks_pending under this dbt invocation,
    and commit_source_windows() (a post-hook, in the model's transaction) moves it to
    ops.source_watermarks only when the model committed. A row arriving while the model builds
    is after the bound and read by the next run; one stamped below the bound but visible late
    is in the next run's look-back. (Before: one watermark for five sources, taken after the
    build, which could move past rejects the run never read.) -#}
{% macro source_window(name, relation, column='_ingested_at') -%}
  {%- if not execute -%}
    true
  {%- else -%}
    {%- set model = this.identifier -%}
    {%- do run_query(source_watermark_tables()) -%}
    {%- set newest = run_query("select max(" ~ column ~ ")::text from " ~ relation).columns[0].values()[0] -%}
    {%- set since = none -%}
    {%- if is_incremental() -%}
      {#- a source without its own mark yet starts from the model's former single watermark -#}
      {%- set since = run_query(
            "select (coalesce("
            ~ "(select read_to from ops.source_watermarks where model = '" ~ model ~ "' and source = '" ~ name ~ "'), "
            ~ "(select ingested_at from ops.transform_watermarks where model = '" ~ model ~ "'))"
            ~ " - interval '" ~ var('lookback_minutes') ~ " minutes')::text").columns[0].values()[0] -%}
    {%- endif -%}
    {%- do run_query(
          "insert into ops.source_watermarks_pending (model, source, invocation_id, read_to, full_read) values ('"
          ~ model ~ "', '" ~ name ~ "', '" ~ invocation_id ~ "', "
          ~ ("null" if newest is none else "timestamptz '" ~ newest ~ "'") ~ ", "
          ~ ("false" if is_incremental() else "true") ~ ") "
          ~ "on conflict (model, source, invocation_id) do update set read_to = excluded.read_to, "
          ~ "full_read = excluded.full_read") -%}
    {%- if newest is none -%}
    false
    {%- else -%}
    ({{ column }} <= timestamptz '{{ newest }}'{% if since is not none %} and {{ column }} > timestamptz '{{ since }}'{% endif %})
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

{#- A full build (first run, --full-refresh) read everything up to its bound: its mark replaces
    the old one. An incremental run only moves a mark forward (two runs may commit out of order). -#}
{% macro commit_source_windows() -%}
  insert into ops.source_watermarks as marks (model, source, read_to, updated_at)
  select model, source, read_to, now()
  from ops.source_watermarks_pending
  where model = '{{ this.identifier }}' and invocation_id = '{{ invocation_id }}' and read_to is not null
  on conflict (model, source) do update
    set read_to = case when (select bool_or(full_read) from ops.source_watermarks_pending as p
                             where p.model = marks.model and p.source = marks.source
                               and p.invocation_id = '{{ invocation_id }}')
                       then excluded.read_to else greatest(marks.read_to, excluded.read_to) end,
        updated_at = excluded.updated_at;
  delete from ops.source_watermarks_pending
  where model = '{{ this.identifier }}' and (invocation_id = '{{ invocation_id }}' or created_at < now() - interval '1 day')
{%- endmacro %}

{#- The two tables (also created by create_stage_functions at the start of every run; here too
    because `dbt compile` compiles models without running the on-run-start hooks). -#}
{% macro source_watermark_tables() -%}
create table if not exists ops.source_watermarks (
    model text not null,
    source text not null,
    read_to timestamptz not null,
    updated_at timestamptz not null,
    primary key (model, source)
);
create table if not exists ops.source_watermarks_pending (
    model text not null,
    source text not null,
    invocation_id text not null,
    read_to timestamptz,
    full_read boolean not null default false,
    created_at timestamptz not null default now(),
    primary key (model, source, invocation_id)
)
{%- endmacro %}
