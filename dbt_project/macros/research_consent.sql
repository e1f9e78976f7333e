{#- What curated was last built with, per consenting user: the consent minute and the user's
    devices (stage.research_consent_applied, written by curated_research_minutely's post-hook).
    A user whose consent or devices differ now (a grant, a consent moved earlier or later, a
    device gained or lost) has every curated row recomputed from their consent on. -#}
{% macro research_consent_now() -%}
    select
        u.user_id,
        {{ research_id("u.user_id") }} as research_id,
        date_trunc('minute', u.share_with_research_asof) as consent_minute,
        coalesce(array_agg(d.device_id::text order by d.device_id) filter (where d.device_id is not null),
                 '{}'::text[]) as device_ids
    from {{ ref('dim_users') }} as u
    left join {{ ref('dim_devices') }} as d on d.owner_user_id = u.user_id
    where u.share_with_research_asof is not null
    group by u.user_id, u.share_with_research_asof
{%- endmacro %}

{% macro research_consent_changes() -%}
    select now_.user_id, now_.research_id, now_.consent_minute
    from ({{ research_consent_now() }}) as now_
    left join stage.research_consent_applied as applied on applied.user_id = now_.user_id
    where applied.user_id is null
       or applied.consent_minute is distinct from now_.consent_minute
       or applied.device_ids is distinct from now_.device_ids
{%- endmacro %}

{#- pre-hook: the rows of users whose consent or devices changed go; the model recomputes them. -#}
{% macro research_consent_reset() -%}
  {%- if is_incremental() -%}
    delete from {{ this }} where research_id in (select research_id from ({{ research_consent_changes() }}) as changed)
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{#- post-hook: remember what this build applied (same transaction as the merge). -#}
{% macro research_consent_save() -%}
    delete from stage.research_consent_applied as a
    where not exists (select 1 from ({{ research_consent_now() }}) as now_ where now_.user_id = a.user_id);
    insert into stage.research_consent_applied as a (user_id, consent_minute, device_ids, applied_at)
    select user_id, consent_minute, device_ids, now() from ({{ research_consent_now() }}) as now_
    on conflict (user_id) do update set consent_minute = excluded.consent_minute, device_ids = excluded.device_ids,
                                        applied_at = excluded.applied_at
    where (a.consent_minute, a.device_ids) is distinct from (excluded.consent_minute, excluded.device_ids)
{%- endmacro %}

{#- The pseudonymous research id of a user id (a keyed hash in the warehouse: warehouse/init/03_privacy.sql). -#}
{% macro research_id(user_id) -%}
    ops.research_id({{ user_id }})
{%- endmacro %}
