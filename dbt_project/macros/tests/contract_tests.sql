{#- Generic tests whose bounds come from the data contract (macros/contract.sql, generated from
    iot_core/contract.py), so a dbt test can never disagree with the extract or the API. -#}

{#- Every non-null value lies in the contract's range of `field` (NaN and infinities fail). -#}
{% test in_contract_range(model, column_name, field) %}
{%- set bounds = contract_range(field) %}
select {{ column_name }} as failing_value
from {{ model }}
where {{ column_name }} is not null
  and not ({{ column_name }} between {{ bounds[0] }} and {{ bounds[1] }})
{% endtest %}

{#- Every non-null value is one of the contract's choices of `field` (a path of
    contract_choices, e.g. devices.kind, or air_quality.measure_name). -#}
{% test in_contract_choices(model, column_name, field) %}
select {{ column_name }} as failing_value
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} not in {{ contract_sql_list(contract_choices(field)) }}
{% endtest %}

{#- Long-format readings: each value lies in the contract's range of its own measure. -#}
{% test measure_in_contract_range(model, column_name, measure_column='measure_name') %}
select r.{{ measure_column }}, r.{{ column_name }} as failing_value
from {{ model }} as r
join {{ contract_measures('m') }} on m.measure_name = r.{{ measure_column }}
where r.{{ column_name }} is not null
  and not (r.{{ column_name }} between m.min_value and m.max_value)
{% endtest %}
