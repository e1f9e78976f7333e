{#- The incremental batch is a fresh temporary table without statistics, so PostgreSQL guesses
    it is large and plans a hash join that scans the whole target: an incremental run would then
    cost the size of the history, not of the batch. ANALYZE gives the planner the real (small)
    row count, so the merge probes the target's unique index instead. -#}
{% macro postgres__get_incremental_merge_sql(arg_dict) -%}
  analyze {{ arg_dict["temp_relation"] }};
  {{ default__get_incremental_merge_sql(arg_dict) }}
{%- endmacro %}

{% macro postgres__get_incremental_delete_insert_sql(arg_dict) -%}
  analyze {{ arg_dict["temp_relation"] }};
  {{ default__get_incremental_delete_insert_sql(arg_dict) }}
{%- endmacro %}
