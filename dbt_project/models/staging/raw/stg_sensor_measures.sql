-- The air-quality measures in payload order (docs/contracts.md §1), with units and the valid
-- range used by the stage checks: the data contract (iot_core/contract.py) via its generated
-- macros (macros/contract.sql).
{{ config(materialized='table') }}
select measure_name, position, unit, min_value, max_value, description
from {{ contract_measures() }}
