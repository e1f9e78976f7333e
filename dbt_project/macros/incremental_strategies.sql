{#- The incremental batch is a fresh temporary table without statistics, so PostgreSQL guesses
    it is large and plans a hash join that scans the whole target: an incremental run would then
    cost the size of the history, not of the batch. ANALYZE gives the planner the real (small)
    row count, so the merge probes the target's unique index instead. -#}
{#- TimescaleDB refuses MERGE with UPDATE actions on compressed hypertable chunks, which late data
    reaches; DELETE and INSERT work on them, so hypertable models merge by delete+insert there
    (same result: the batch replaces the rows with its keys). -#}
{% macro postgres__get_incremental_merge_sql(arg_dict) -%}
  analyze {{ arg_dict["temp_relation"] }};
  {{ drop_unchanged_batch_rows(arg_dict) }};
  analyze {{ arg_dict["temp_relation"] }};
  {%- if config.get('hypertable') and timescaledb_enabled() %}
  {{ default__get_incremental_delete_insert_sql(arg_dict) }}
  {%- else %}
  {{ default__get_incremental_merge_sql(arg_dict) }}
  {%- endif %}
{%- endmacro %}

{% macro postgres__get_incremental_delete_insert_sql(arg_dict) -%}
  analyze {{ arg_dict["temp_relation"] }};
  {{ default__get_incremental_delete_insert_sql(arg_dict) }}
{%- endmacro %}

{#- The look-back re-reads rows already transformed (an hour of readings for one new minute).
    Merging them would rewrite each as a new row version with new index entries although
    nothing changed; removing the batch rows identical to their target row first leaves the
    merge with what is new or different, so a re-run really writes nothing. -#}
{% macro drop_unchanged_batch_rows(arg_dict) -%}
  {%- set keys = arg_dict["unique_key"] -%}
  {%- set keys = [keys] if keys is string else keys -%}
  {%- set columns = arg_dict["dest_columns"] | map(attribute="name") | map("replace", '"', '') | list -%}
  delete from {{ arg_dict["temp_relation"] }} as batch
  using {{ arg_dict["target_relation"] }} as target
  where {% for key in keys %}target.{{ key }} = batch.{{ key }} and {% endfor %}
    ({% for c in columns %}target.{{ adapter.quote(c) }}{{ ", " if not loop.last }}{% endfor %})
    is not distinct from
    ({% for c in columns %}batch.{{ adapter.quote(c) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
