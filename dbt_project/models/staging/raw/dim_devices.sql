-- Device dimension (seed 004's star schema): kind, owner or location, manufacturer and the
-- dates of its install history. One row per device_id (macros/registry.sql decides between
-- documents that share one; the others are in stg_rejects).
{{ config(materialized='table', indexes=[{'columns': ['device_id'], 'unique': True},
                                          {'columns': ['owner_user_id']}]) }}

with owners_from_users as (
    -- a device listed in a user's `devices` array belongs to that user even if the registry
    -- entry lacks the owner
    select distinct on (device_id) device_id, user_id
    from {{ ranked_registry(source('raw', 'users'), 'user_id') }} as u
    cross join lateral jsonb_array_elements_text(
        case when jsonb_typeof(u.devices) = 'array' then u.devices else '[]'::jsonb end
    ) as device_id
    where u.registry_rank = 1
    order by device_id, user_id
),

history as (
    select
        device_id,
        min(event_ts) filter (where action = 'INSTALLED') as first_installed_at,
        max(event_ts) filter (where action = 'CALIBRATED') as last_calibrated_at,
        max(event_ts) filter (where action = 'FIRMWARE_UPGRADED') as last_firmware_upgrade_at,
        max(event_ts) filter (where action = 'DECOMMISSIONED') as decommissioned_at,
        count(*) as history_event_count
    from {{ ref('stg_device_history') }}
    group by device_id
)

select
    d.device_id,
    d.kind,
    coalesce(d.owner_user_id, o.user_id) as owner_user_id,
    d.lat::double precision as latitude,
    d.long::double precision as longitude,
    d.location_description,
    d.building,
    d.floor::text as floor,
    d.room::text as room,
    d.manufacturer_name,
    d.manufacturer_website,
    d.model,
    d.mac,
    d.installed_at,
    h.last_calibrated_at,
    h.last_firmware_upgrade_at,
    h.decommissioned_at,
    coalesce(h.history_event_count, 0) as history_event_count,
    coalesce(d.active, h.decommissioned_at is null) as is_active
from {{ ranked_registry(source('raw', 'devices'), 'device_id') }} as d
left join owners_from_users as o on o.device_id = d.device_id
left join history as h on h.device_id = d.device_id
where d.registry_rank = 1
