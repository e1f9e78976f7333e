{#- Generic test: every non-null value lies in [min_value, max_value] (NaN and infinities fail). -#}
{% test value_in_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }} as failing_value
from {{ model }}
where {{ column_name }} is not null
  and (
    {{ column_name }}::text in ('NaN', 'Infinity', '-Infinity')
    {% if min_value is not none %} or {{ column_name }} < {{ min_value }} {% endif %}
    {% if max_value is not none %} or {{ column_name }} > {{ max_value }} {% endif %}
  )
{% endtest %}
