{#- Any value as an SQL string literal (dbt's string_literal does not double the quotes). One
    definition for the macros that write SQL text (incremental strategies, rebuilds, comments). -#}
{% macro sql_literal(value) -%}
  '{{ value | string | replace("'", "''") }}'
{%- endmacro %}
