{#- The incremental batch is a fresh temporary table without statistics, so PostgreSQL guesses
    it is large and plans a hash join that scans the whole target: an incremental run would then
    cost the size of the history, not of the batch. ANALYZE gives the planner the real (small)
    row count, so the merge probes the target's unique index instead. -#}
{#- TimescaleDB refuses MERGE with UPDATE actions on compressed hypertable chunks, which late data
    reaches; DELETE and INSERT work on them, so hypertable models merge by delete+insert there
    (same result: the batch replaces the rows with its keys). -#}
{% macro postgres__get_incremental_merge_sql(arg_dict) -%}
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
