{#- Age buckets of the seed 001 "monthly health by age group" analysis. -#}
{% macro age_group(age) -%}
  case
    when {{ age }} is null or {{ age }} < 0 or {{ age }} > {{ contract_max_age_years() }} then 'unknown'
    when {{ age }} < 18 then 'under 18'
    when {{ age }} < 25 then '18-24'
    when {{ age }} < 35 then '25-34'
    when {{ age }} < 45 then '35-44'
    when {{ age }} < 55 then '45-54'
    when {{ age }} < 65 then '55-64'
    else '65+'
  end
{%- endmacro %}
