{#- A registry (raw.users or raw.devices) ranked per natural key. Several documents may carry the
    same key (a second registration under another _id): the one whose _id is the key wins, else
    the first ingested (then the smallest _id), so a later document can never take a user or
    device over. registry_rank = 1 is the entry; the others are rejected (stg_rejects:
    duplicate_<key>) and never stop a build that needs one row per key. kept_id: the _id of the
    winner. One definition for dim_users, dim_devices, the device lookups of the stage checks
    and stg_rejects. -#}
{% macro ranked_registry(relation, key) -%}
(
    select
        r.*,
        row_number() over by_key as registry_rank,
        first_value(r._id) over by_key as kept_id
    from {{ relation }} as r
    where r.{{ key }} is not null
    window by_key as (partition by r.{{ key }}
                      order by coalesce(r._id = r.{{ key }}, false) desc, r._ingested_at, r._id)
)
{%- endmacro %}

{#- device_id -> kind of the registered devices (one row per device), read from dim_devices, the
    dimension the stage models' relationship tests check: a reading is accepted exactly when its
    device is there, whatever raw.devices received since dim_devices was built. (Reading
    raw.devices here let a reading of a device registered a moment before pass while dim_devices,
    not selected by that air-quality run, lacked it: the relationship test then failed the hot
    path's stage run.) The stage runs build dim_devices with every selection
    (orchestration.asset_events.stage_selection). -#}
{% macro registered_devices() -%}
(select device_id, kind from {{ ref('dim_devices') }})
{%- endmacro %}
