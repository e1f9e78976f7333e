-- The consent timeline per user and purpose: each recorded version with the time it was
-- superseded (null: current). A user consented to a purpose at time T, as recorded at time R,
-- when the version with recorded_at <= R < coalesce(superseded_at, infinity) has
-- consent_from <= T.
{{ config(materialized='view') }}

select
    user_id,
    purpose,
    consent_from,
    recorded_at,
    lead(recorded_at) over (partition by user_id, purpose order by recorded_at) as superseded_at
from {{ ref('stg_consent_history') }}
