{#- Models land in the schema they name (stage, agg, curated), not "<target>_<schema>":
    the warehouse schemas and their grants are created by warehouse/init, not by dbt. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
