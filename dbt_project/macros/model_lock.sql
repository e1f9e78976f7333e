{#- One build of a model at a time across dbt invocations. The hourly master DAG, the stage hot
    path, the per-layer DAGs and `iot transform` can build the same model at once; without this,
    the second build of a table model collides with the first one's `__dbt_tmp`/`__dbt_backup`
    relations and an incremental merge of rows both runs selected fails on the unique key. The
    lock is a transaction-level PostgreSQL advisory lock taken by every model's first statement
    inside its transaction (a pre-hook), so it is released when the model commits or rolls back,
    and a build that waits then merges only what the other did not already write (the batch rows
    identical to the target are dropped before the merge). Two int4 keys: a namespace of their
    own, apart from the single-bigint keys the extract uses. The same namespace is
    iot_core.locks.MODEL_LOCK_NAMESPACE (erasure takes these locks; a test checks they agree). -#}
{% macro model_lock_namespace() -%}1684174880{%- endmacro %}

{% macro model_lock(relation=none) -%}
  {%- set relation = relation or this -%}
  select pg_advisory_xact_lock({{ model_lock_namespace() }}, hashtext('{{ relation.schema }}.{{ relation.identifier }}'))
{%- endmacro %}
