{#- Generic test: no timestamp lies more than the tolerance after the reference column (by
    default the row's own ingestion time, so the test is deterministic on re-runs). The default
    tolerance is the data contract's (macros/contract.sql); tolerance_minutes overrides it. -#}
{% test not_in_future(model, column_name, reference='_ingested_at', tolerance_minutes=none) %}
select {{ column_name }} as failing_time, {{ reference }} as reference_time
from {{ model }}
where {{ column_name }} > {{ reference }} + {% if tolerance_minutes is none %}{{ contract_future_tolerance() }}{% else %}interval '{{ tolerance_minutes }} minutes'{% endif %}
{% endtest %}
