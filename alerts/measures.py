"""Which measures a rule may name: the one lookup the alerts make of the data contract.

The names and units come from the warehouse's ``stage.stg_sensor_measures`` (built by dbt from the
data contract), so a measure the contract adds is usable in a rule without touching this package.
When the contract moves into the ground package (iot_core), this is the one function to repoint.
"""

from __future__ import annotations

SOURCE_TABLE = "stage.stg_sensor_measures"

# The forecast writes ``ml.predictions`` rows named ``<measure>~<h>`` for h = 1 .. 15 minutes
# (docs/forecasting.md; the forecast DAG predicts IAQ only). A forecast rule may name these.
FORECAST_MEASURES = ("iaq",)
FORECAST_HORIZON_MINUTES = 15


class ContractUnavailable(RuntimeError):
    pass


def measure_units(conn) -> dict[str, str]:
    """measure name -> unit, from ``stage.stg_sensor_measures``."""
    import psycopg

    try:
        with conn.cursor() as cur:
            cur.execute(f"select measure_name, unit from {SOURCE_TABLE} order by position")
            rows = cur.fetchall()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        raise ContractUnavailable(f"{SOURCE_TABLE} does not exist yet: build the stage layer first "
                                  "(`iot transform` or the iot_stage_transform DAG)") from None
    if not rows:
        raise ContractUnavailable(f"{SOURCE_TABLE} is empty: build the stage layer first")
    return {name: unit for name, unit in rows}
