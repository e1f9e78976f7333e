{#- The incremental batch is a fresh temporary table without statistics, so PostgreSQL guesses
    it is large and plans a hash join that scans the whole target: an incremental run would then
    cost the size of the history, not of the batch. ANALYZE gives the planner the real (small)
    row count, so the merge probes the target's unique index instead. -#}
{#- Hypertables (models with a `hypertable` config, TimescaleDB present) take their own path,
    hypertable_delete_insert_sql: every statement that deletes from the target is bounded by the
    batch's own time range, per chunk, as constants, so compressed history the batch does not
    write is never decompressed. -#}
{% macro postgres__get_incremental_merge_sql(arg_dict) -%}
  {%- if writes_hypertable(arg_dict["target_relation"]) %}
  {{ hypertable_delete_insert_sql(arg_dict) }}
  {%- else %}
  analyze {{ arg_dict["temp_relation"] }};
  {{ drop_unchanged_batch_rows(arg_dict) }};
  analyze {{ arg_dict["temp_relation"] }};
  {{ default__get_incremental_merge_sql(arg_dict) }}
  {%- endif %}
{%- endmacro %}

{% macro postgres__get_incremental_delete_insert_sql(arg_dict) -%}
  {%- if writes_hypertable(arg_dict["target_relation"]) %}
  {{ hypertable_delete_insert_sql(arg_dict) }}
  {%- else %}
  analyze {{ arg_dict["temp_relation"] }};
  {{ default__get_incremental_delete_insert_sql(arg_dict) }}
  {%- endif %}
{%- endmacro %}

{#- True when the model is configured as a hypertable, TimescaleDB is present and the target
    really is one: a table built before its model became a hypertable (an agg table of an older
    deployment) stays a plain table until it is rebuilt, and takes the plain path. -#}
{% macro writes_hypertable(target) -%}
  {%- if config.get('hypertable') is none or not timescaledb_enabled() or not execute -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set found = run_query("select 1 from timescaledb_information.hypertables where hypertable_schema = '"
                            ~ target.schema ~ "' and hypertable_name = '" ~ target.identifier ~ "'") -%}
  {{ return(found.rows | length > 0) }}
{%- endmacro %}

{#- The look-back re-reads rows already transformed (an hour of readings for one new minute).
    Merging them would rewrite each as a new row version with new index entries although
    nothing changed; removing the batch rows identical to their target row first leaves the
    merge with what is new or different, so a re-run really writes nothing. `time_bounds`
    (column, lowest, highest) limits the target rows read to the batch's time range, which lets
    TimescaleDB skip every chunk outside it. -#}
{% macro drop_unchanged_batch_rows(arg_dict, time_bounds=none) -%}
  {%- set keys = arg_dict["unique_key"] -%}
  {%- set keys = [keys] if keys is string else keys -%}
  {%- set columns = arg_dict["dest_columns"] | map(attribute="name") | map("replace", '"', '') | list -%}
  delete from {{ arg_dict["temp_relation"] }} as batch
  using {{ arg_dict["target_relation"] }} as target
  where {% for key in keys %}target.{{ key }} = batch.{{ key }} and {% endfor %}
    {%- if time_bounds %}
    target.{{ time_bounds[0] }} >= {{ sql_literal(time_bounds[1]) }} and target.{{ time_bounds[0] }} <= {{ sql_literal(time_bounds[2]) }} and
    {%- endif %}
    ({% for c in columns %}target.{{ adapter.quote(c) }}{{ ", " if not loop.last }}{% endfor %})
    is not distinct from
    ({% for c in columns %}batch.{{ adapter.quote(c) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- Merge into a hypertable without touching history the batch does not write.

    TimescaleDB decompresses, for an UPDATE / DELETE / MERGE, every compressed batch its scan of a
    chunk may match, judged only from the scan's constant conditions. The generic
    `delete ... where (keys) in (select ... from batch)` has none, so one incremental run
    decompressed all compressed history (5.8 M tuples for one new minute at 30 days x 20 sensors,
    `tuple decompression limit exceeded`). Here the batch is examined first (queries run before
    the statement is written) and the constants go into the SQL:
      1. rows identical to their target row are dropped from the batch (look-back re-reads),
         reading only the target rows inside the batch's time range;
      2. per existing chunk the remaining batch rows fall into: one DELETE bounded by the
         lowest and highest time of those rows and by the segment (`segment_by`, e.g.
         device_id) values among them, so only the compressed batches that can hold a key of
         the batch are decompressed; rows for a chunk that does not exist yet delete nothing;
      3. one INSERT of the batch.
    A run after compression therefore touches only the chunks it writes, and a late reading
    into a compressed chunk decompresses the one batch of its device that holds its time. -#}
{% macro hypertable_delete_insert_sql(arg_dict) -%}
  {%- set batch = arg_dict["temp_relation"] -%}
  {%- set target = arg_dict["target_relation"] -%}
  {%- set ht = config.get('hypertable') -%}
  {%- set time_column = ht['time_column'] -%}
  {%- set segment = (ht.get('segment_by') or '').split(',')[0] | trim -%}
  {%- set keys = arg_dict["unique_key"] -%}
  {%- set keys = [keys] if keys is string else keys -%}
  {%- set key_list = keys | join(', ') -%}
  {%- set dest_cols_csv = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
  {%- set groups = [] -%}
  {%- if execute -%}
    {%- do run_query('analyze ' ~ batch) -%}
    {%- set span = run_query('select min(' ~ time_column ~ ')::text, max(' ~ time_column ~ ')::text from ' ~ batch).rows[0] -%}
    {%- if span[0] is not none -%}
      {%- do run_query(drop_unchanged_batch_rows(arg_dict, time_bounds=(time_column, span[0], span[1]))) -%}
      {%- do run_query('analyze ' ~ batch) -%}
      {%- set groups = run_query(batch_chunk_groups_sql(batch, target, time_column, segment)).rows -%}
    {%- endif -%}
  {%- endif -%}
  {%- for g in groups %}
  delete from {{ target }} as target
  where target.{{ time_column }} >= {{ sql_literal(g[0]) }} and target.{{ time_column }} <= {{ sql_literal(g[1]) }}
    {%- if segment %}
    and target.{{ segment }} = any({{ sql_literal(g[2]) }})
    {%- endif %}
    and ({{ key_list }}) in (
      select {{ key_list }} from {{ batch }} as batch
      where batch.{{ time_column }} >= {{ sql_literal(g[0]) }} and batch.{{ time_column }} <= {{ sql_literal(g[1]) }});
  {%- endfor %}
  insert into {{ target }} ({{ dest_cols_csv }})
  select {{ dest_cols_csv }} from {{ batch }}
{%- endmacro %}

{#- One row per existing chunk of `target` that batch rows fall into: (lowest time, highest
    time, segment values as a text array). -#}
{% macro batch_chunk_groups_sql(batch, target, time_column, segment) -%}
  select min(b.{{ time_column }})::text, max(b.{{ time_column }})::text,
         {% if segment %}array_agg(distinct b.{{ segment }})::text{% else %}null{% endif %}
  from {{ batch }} as b
  join timescaledb_information.chunks as c
    on c.hypertable_schema = '{{ target.schema }}' and c.hypertable_name = '{{ target.identifier }}'
   and b.{{ time_column }} >= c.range_start and b.{{ time_column }} < c.range_end
  group by c.chunk_schema, c.chunk_name
  order by 1
{%- endmacro %}
