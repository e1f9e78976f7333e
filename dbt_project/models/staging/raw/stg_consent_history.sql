-- Consent as history (seed 002, DESIGN §4): one row per user, purpose and change of the consent
-- date the source said, with the time the platform captured the change. A withdrawal is a row
-- whose consent_from is null. "Did user U consent to research at time T, as recorded at time R?"
-- is answered by the version recorded at or before R (stage.consent_periods).
--
-- Append-only: raw.users holds only each user's current document, so the history exists only
-- here; a full refresh would lose it (full_refresh=false: `dbt build --full-refresh` leaves it).
-- Erasure deletes a user's rows like every other row of the user.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
    indexes=[{'columns': ['user_id', 'purpose', 'recorded_at'], 'unique': True}],
) }}

with versions as (
    select
        u.user_id,
        c.purpose,
        c.consent_from,
        u._ingested_at as recorded_at
    -- one document per user_id: the registry's entry (macros/registry.sql; the others are rejects)
    from {{ ranked_registry(source('raw', 'users'), 'user_id') }} as u
    cross join lateral (values
        ('research', u.share_with_research_asof),
        ('public', u.share_with_public_asof),
        ('friends', u.share_with_friends_asof)
    ) as c(purpose, consent_from)
    where u.registry_rank = 1
    {%- if is_incremental() %}
      and u._ingested_at > {{ cursor_literal("select max(recorded_at) from " ~ this) }}
    {%- endif %}
),

{% if is_incremental() %}
recorded as (
    select distinct on (user_id, purpose) user_id, purpose, consent_from, recorded_at
    from {{ this }}
    order by user_id, purpose, recorded_at desc
),
{% endif %}

changes as (
    select v.*
    from versions as v
    {% if is_incremental() %}
    left join recorded as r on r.user_id = v.user_id and r.purpose = v.purpose
    -- a version re-read by the look-back, or older than what is recorded, changes nothing
    where r.user_id is null
       or (v.recorded_at > r.recorded_at and v.consent_from is distinct from r.consent_from)
    {% endif %}
)

select user_id, purpose, consent_from, recorded_at
from changes
