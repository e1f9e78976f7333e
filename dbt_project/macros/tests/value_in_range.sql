{#- Generic test: every non-null value lies in [min_value, max_value] (NaN and infinities fail).
    With both bounds the range check alone catches them (PostgreSQL orders NaN above every number,
    and the infinities lie outside any finite range), so no value is cast to text: on 30 M
    readings that cast cost more than the scan. -#}
{% test value_in_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }} as failing_value
from {{ model }}
where {{ column_name }} is not null
  and (
    {%- if min_value is not none and max_value is not none %}
    not ({{ column_name }} between {{ min_value }} and {{ max_value }})
    {%- else %}
    {{ column_name }}::text in ('NaN', 'Infinity', '-Infinity')
    {% if min_value is not none %} or {{ column_name }} < {{ min_value }} {% endif %}
    {% if max_value is not none %} or {{ column_name }} > {{ max_value }} {% endif %}
    {%- endif %}
  )
{% endtest %}
