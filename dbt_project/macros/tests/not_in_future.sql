{#- Generic test: no timestamp lies more than tolerance_minutes after the reference column
    (by default the row's own ingestion time, so the test is deterministic on re-runs). -#}
{% test not_in_future(model, column_name, reference='_ingested_at', tolerance_minutes=60) %}
select {{ column_name }} as failing_time, {{ reference }} as reference_time
from {{ model }}
where {{ column_name }} > {{ reference }} + interval '{{ tolerance_minutes }} minutes'
{% endtest %}
