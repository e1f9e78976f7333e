{#- Rebuilds that never make a relation vanish (issue 16).

    dbt's own `table` and `view` materializations build `x__dbt_tmp`, rename `x` to
    `x__dbt_backup`, rename the new one to `x`, commit, and only then `drop ... cascade` the
    backup: every view that reads `x` (seed 004's agg.agg_latest_reading reads dim_devices and
    stg_sensor_measures) followed the rename and is dropped with the backup, until the agg step
    happens to build it again: minutes of "relation does not exist" for DBeaver and Grafana in
    every master run.

    These overrides of the two materializations (PostgreSQL; chosen by dbt over the built-in ones
    because they live in the root project) keep every object in place:

    * table: the new rows are built in `x__dbt_tmp`; when its columns are those of `x` (name,
      type and order: every run but the one after a change of the model's columns), `x` is
      emptied with DELETE and refilled from it in the model's one transaction. Readers are never
      blocked and see the old rows until the commit, then the new ones (MVCC; TRUNCATE would
      lock them out and is not MVCC-safe). `x` keeps its oid, grants, comments and indexes, so
      nothing depending on it notices. Indexes missing from the `indexes` config are added.
    * view: `create or replace view` when the new columns start with the old ones (PostgreSQL
      keeps the view's dependants, grants and comments).
    * otherwise (columns changed, or the relation changes kind): the swap and the re-creation of
      every view that depended on the old relation, transitively, with their comments and
      grants, happen in one transaction. Readers wait for its locks for that moment and then see
      the new objects; never an error.

    A materialized view or continuous aggregate depending on a table model is re-created as
    what it was only for plain materialized views; the incremental models' `--full-refresh` still
    takes dbt's swap (their dependants are rebuilt by the same full build). -#}

{#- (name, type) of each column, in order. -#}
{% macro column_signature(relation) -%}
  {%- set signature = [] -%}
  {%- for column in adapter.get_columns_in_relation(relation) -%}
    {%- do signature.append((column.name, column.data_type)) -%}
  {%- endfor -%}
  {{ return(signature) }}
{%- endmacro %}

{#- Every view and materialized view that reads `relation`, directly or through other views,
    the nearest first, with what it takes to create it again. -#}
{% macro dependent_views(relation) -%}
  {#- pg_get_viewdef qualifies every name not on the search_path: with an empty one, all of them -#}
  {%- set saved_path = run_query("select current_setting('search_path')").columns[0].values()[0] -%}
  {%- do run_query("select set_config('search_path', '', true)") -%}
  {%- set found = run_query("""
      with recursive deps(oid, depth) as (
          select r.ev_class, 1
          from pg_catalog.pg_depend as d
          join pg_catalog.pg_rewrite as r on r.oid = d.objid
          where d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
            and d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            and d.refobjid = '""" ~ relation ~ """'::pg_catalog.regclass
            and r.ev_class <> d.refobjid
          union
          select r.ev_class, deps.depth + 1
          from deps
          join pg_catalog.pg_depend as d on d.refobjid = deps.oid
              and d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
              and d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          join pg_catalog.pg_rewrite as r on r.oid = d.objid
          where r.ev_class <> deps.oid
      )
      select
          pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) as name,
          c.relkind::text as kind,
          max(deps.depth) as depth,
          pg_catalog.pg_get_viewdef(c.oid) as definition,
          pg_catalog.obj_description(c.oid, 'pg_class') as comment,
          coalesce((select pg_catalog.json_agg(pg_catalog.json_build_array(a.attname,
                                                                          pg_catalog.col_description(c.oid, a.attnum)))
                    from pg_catalog.pg_attribute as a
                    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                      and pg_catalog.col_description(c.oid, a.attnum) is not null), '[]')::text as column_comments,
          coalesce((select pg_catalog.json_agg(pg_catalog.json_build_array(
                               case when g.grantee = 0 then 'public'
                                    else pg_catalog.quote_ident(g.grantee::pg_catalog.regrole::text) end,
                               g.privilege_type))
                    from pg_catalog.aclexplode(c.relacl) as g
                    where g.grantee <> c.relowner), '[]')::text as grants
      from deps
      join pg_catalog.pg_class as c on c.oid = deps.oid
      join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
      group by c.oid, n.nspname, c.relname, c.relkind
      order by max(deps.depth), 1
  """) -%}
  {%- do run_query("select set_config('search_path', " ~ sql_literal(saved_path) ~ ", true)") -%}
  {%- set views = [] -%}
  {%- for row in found.rows -%}
    {%- if row['kind'] not in ('v', 'm') -%}
      {{ exceptions.raise_compiler_error(row['name'] ~ " (relkind " ~ row['kind'] ~ ") depends on " ~ relation
                                         ~ ": cannot re-create it after the rebuild") }}
    {%- endif -%}
    {%- do views.append({'name': row['name'], 'kind': row['kind'], 'definition': row['definition'],
                         'comment': row['comment'], 'column_comments': fromjson(row['column_comments']),
                         'grants': fromjson(row['grants'])}) -%}
  {%- endfor -%}
  {{ return(views) }}
{%- endmacro %}

{#- Replace `existing` by `intermediate` under the name of `target` and re-create the views that
    depended on `existing`, inside the caller's transaction. -#}
{% macro swap_keeping_dependants(existing, intermediate, target) -%}
  {%- set views = dependent_views(existing) -%}
  {%- if views -%}
    {{ log("rebuilding " ~ target ~ " with new columns: re-creating " ~ views | length ~ " dependent view(s) "
           ~ "in the same transaction: " ~ views | map(attribute='name') | join(', '), info=True) }}
  {%- endif -%}
  {% call statement('swap_keeping_dependants') -%}
    {#- A reader of a view locks the view, then what it reads. So the swap takes every view
        before any table: it drops them by name, outermost first (DROP VIEW locks the view only).
        `drop table ... cascade` alone locked the table, then the views; `lock table` on the
        views locked the first view and, recursively, its tables before the next view: either
        way a reader holding a view and waiting for the table deadlocked with the swap, and one
        of them was aborted. Materialized views are left to the cascade: their readers do not
        lock what they were built from. -#}
    {%- set plain_views = views | rejectattr('kind', 'equalto', 'm') | list | reverse | list %}
    {%- if plain_views %}
    drop view {% for v in plain_views %}{{ v.name }}{{ ", " if not loop.last }}{% endfor %} cascade;
    {%- endif %}
    drop {{ 'view' if existing.is_view else 'table' }} {{ existing }} cascade;
    alter {{ 'view' if intermediate.is_view else 'table' }} {{ intermediate }} rename to {{ adapter.quote(target.identifier) }};
    {%- for v in views %}
    create {{ 'materialized view' if v.kind == 'm' else 'view' }} {{ v.name }} as {{ v.definition | trim | trim(';') }};
    {%- if v.comment is not none %}
    comment on {{ 'materialized view' if v.kind == 'm' else 'view' }} {{ v.name }} is {{ sql_literal(v.comment) }};
    {%- endif %}
    {%- for column, text in v.column_comments %}
    comment on column {{ v.name }}.{{ adapter.quote(column) }} is {{ sql_literal(text) }};
    {%- endfor %}
    {%- for grantee, privilege in v.grants %}
    grant {{ privilege }} on {{ v.name }} to {{ grantee }};
    {%- endfor %}
    {%- endfor %}
  {%- endcall %}
{%- endmacro %}

{#- Indexes of the `indexes` config that the table does not have yet (same columns, same
    uniqueness). dbt names indexes with a timestamp, so "create index if not exists" would add
    a copy on every run. -#}
{% macro create_missing_indexes(relation) -%}
  {%- set have = run_query("""
      select pg_catalog.array_to_string(array_agg(a.attname order by k.ord), ',') || '|' || i.indisunique::text
      from pg_catalog.pg_index as i
      cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
      join pg_catalog.pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = '""" ~ relation ~ """'::pg_catalog.regclass
      group by i.indexrelid, i.indisunique""").columns[0].values() -%}
  {%- for index_dict in config.get('indexes', default=[]) -%}
    {%- set wanted = index_dict['columns'] | join(',') ~ '|' ~ (index_dict.get('unique', false) | string | lower) -%}
    {%- if wanted not in have -%}
      {% call statement('create_missing_index') -%}
        {{ get_create_index_sql(relation, index_dict) }}
      {%- endcall %}
    {%- endif -%}
  {%- endfor -%}
{%- endmacro %}

{% materialization table, adapter='postgres' %}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set grant_config = config.get('grants') -%}
  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% if existing_relation is none %}
    {% call statement('main') -%}
      {{ get_create_table_as_sql(False, target_relation, sql) }}
    {%- endcall %}
    {% do create_indexes(target_relation) %}
  {% else %}
    {% call statement('main') -%}
      {{ get_create_table_as_sql(False, intermediate_relation, sql) }}
    {%- endcall %}
    {%- set new_columns = column_signature(intermediate_relation) -%}
    {% if existing_relation.is_table and column_signature(existing_relation) == new_columns %}
      {%- set column_list = new_columns | map(attribute=0) | map('replace', '"', '""') | list -%}
      {% call statement('replace_rows') -%}
        delete from {{ target_relation }};
        insert into {{ target_relation }} ("{{ column_list | join('", "') }}")
        select "{{ column_list | join('", "') }}" from {{ intermediate_relation }};
        drop table {{ intermediate_relation }};
      {%- endcall %}
      {% do create_missing_indexes(target_relation) %}
    {% else %}
      {% do create_indexes(intermediate_relation) %}
      {% do swap_keeping_dependants(existing_relation, intermediate_relation, target_relation) %}
    {% endif %}
  {% endif %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {% do persist_docs(target_relation, model) %}
  -- `COMMIT` happens here
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{% materialization view, adapter='postgres' %}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set grant_config = config.get('grants') -%}
  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% if existing_relation is none %}
    {% call statement('main') -%}
      {{ get_create_view_as_sql(target_relation, sql) }}
    {%- endcall %}
  {% else %}
    {% call statement('main') -%}
      {{ get_create_view_as_sql(intermediate_relation, sql) }}
    {%- endcall %}
    {%- set old_columns = column_signature(existing_relation) -%}
    {%- set new_columns = column_signature(intermediate_relation) -%}
    {% if existing_relation.is_view and new_columns[:old_columns | length] == old_columns %}
      {% call statement('replace_view') -%}
        drop view {{ intermediate_relation }};
        {{ get_replace_view_sql(target_relation, sql) }}
      {%- endcall %}
    {% else %}
      {% do swap_keeping_dependants(existing_relation, intermediate_relation, target_relation) %}
    {% endif %}
  {% endif %}

  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {% do persist_docs(target_relation, model) %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
