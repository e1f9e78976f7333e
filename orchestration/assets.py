"""Airflow assets that chain the DAGs by data (DESIGN §5): extract -> stage -> forecast / agg."""

from __future__ import annotations

import functools
import operator

from airflow.sdk import Asset, AssetAlias

RAW_TABLES = ("air_quality", "heart_rates", "steps", "sleeps", "users", "devices", "quarantine")


def warehouse_asset(schema: str, table: str) -> Asset:
    return Asset(name=f"{schema}.{table}", uri=f"iot://warehouse/{schema}/{table}", group="warehouse")


RAW_ASSETS = {t: warehouse_asset("raw", t) for t in RAW_TABLES}
# the schedule of the DAGs that consume raw: a run whenever any raw table is updated
ANY_RAW_UPDATE = functools.reduce(operator.or_, RAW_ASSETS.values())
# the extract's one outlet: at run time it resolves to the raw assets of the tables that got rows,
# so a run announces only those (a task's fixed outlets would all be announced on success)
RAW_UPDATES_ALIAS = AssetAlias(name="raw.updated_tables", group="warehouse")
STAGE_ASSET = warehouse_asset("stage", "all")          # emitted when a stage run finishes
IAQ_MINUTELY_ASSET = warehouse_asset("stage", "iaq_minutely")
AGG_ASSET = warehouse_asset("agg", "all")
PREDICTIONS_ASSET = warehouse_asset("ml", "predictions")
