"""What the DAGs of the freshness path tell each other in asset events, and read back from them.

The extract announces ``raw.<table>`` only for the tables that received rows in its run, with the
dlt load ids in the event's extra; the stage transform reads those ids back from the events that
triggered it, so the data-quality checkpoint validates exactly the loads the run covers (all of
them, however many extract runs were batched into one stage run).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from orchestration.assets import RAW_ASSETS

# stage models every targeted stage run builds: the registry the stage checks read (see stage_selection)
REGISTRY_MODELS = ("dim_devices",)


def rows_per_raw_asset(result: Mapping[str, Any]) -> dict[str, int]:
    """Rows an extract result (``dlt_pipelines.load_raw``) added per raw asset; only tables with rows.

    Child tables (``air_quality__metrics``) count towards their parent's asset.
    """
    rows: dict[str, int] = {}
    for table in RAW_ASSETS:
        if table == "quarantine":
            n = sum((result.get("quarantined") or {}).values())
        else:
            n = sum(count for name, count in (result.get("loaded") or {}).items()
                    if name == table or name.startswith(f"{table}__"))
        if n:
            rows[table] = n
    return rows


def announce_raw_updates(result: Mapping[str, Any], alias_events) -> dict[str, int]:
    """Add one asset event per raw table that got rows to ``alias_events`` (the outlet events of
    the extract's asset alias); returns the rows per announced table."""
    rows = rows_per_raw_asset(result)
    load_ids = list(result.get("load_ids") or [])
    for table, n in rows.items():
        alias_events.add(RAW_ASSETS[table], extra={"table": table, "rows": n, "load_ids": load_ids})
    return rows


def _extras(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> Iterator[dict]:
    for events in (triggering_asset_events or {}).values():
        for event in events:
            yield getattr(event, "extra", None) or {}


def load_ids_of(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> list[str]:
    """The dlt load ids named by the asset events that triggered a run (sorted, unique)."""
    return sorted({str(i) for extra in _extras(triggering_asset_events) for i in extra.get("load_ids") or ()})


def stage_selection(triggering_asset_events: Mapping[Any, Iterable[Any]] | None,
                    unbuilt_models: Iterable[str] = ()) -> list[str]:
    """dbt selectors of the stage models that read the raw tables the triggering events announce,
    and their descendants in stage: new air-quality rows rebuild the sensor models, not the
    wearable ones. Every stage model when the events name no table (a manual run), or while a
    stage model has never been built: the events that announced its table may belong to a run
    that failed (a fresh platform whose first run failed never built dim_devices, and every later
    air-quality run failed on its relationship test to it)."""
    tables = sorted({extra["table"] for extra in _extras(triggering_asset_events) if extra.get("table") in RAW_ASSETS})
    if not tables or any(True for _ in unbuilt_models):
        return ["tag:stage"]
    # `raw.<table>*` also matches the child table `<table>__metrics`; `,` intersects with tag:stage.
    # The device registry is built with every selection: the stage checks accept a reading or a
    # sample when its device is in dim_devices (macros/registry.sql), and a device registered
    # beside its first readings may have reached raw in an extract whose devices event went to
    # another stage run, or to none (a CLI or master-DAG extract announces nothing).
    return [f"source:raw.{table}*+,tag:stage" for table in tables] + list(REGISTRY_MODELS)


def newest_event_time(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> datetime | None:
    """Time of the newest asset event that triggered a run (None for a run no event triggered).

    An asset-triggered forecast issues at this time: its data was in stage when the event was
    emitted, so the minute of the reading that triggered it is inside the forecast's windows. (The
    run's own ``run_after`` can be the time of an older event queued while the previous run was
    busy, which left the newest minute out until the next cron run.)
    """
    times = [event.timestamp for events in (triggering_asset_events or {}).values() for event in events
             if getattr(event, "timestamp", None) is not None]
    return max(times, default=None)
