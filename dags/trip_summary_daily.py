"""Daily trip summary of the vehicle-logger Parquet lake (seed 003); thin DAG over trips.summary."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from orchestration.defaults import DEFAULT_ARGS
from trips.config import (
    configured_config_path,
    configured_gap_minutes,
    configured_lake_root,
    configured_shard_size,
)

DOC = """
### trip_summary_daily

Summarises every trip of one day of the Parquet lake
`ROOT/<device>/<message>/<yyyy>/<mm>/<dd>/*.parquet` into
`ROOT/aggregations/tripsummary/<yyyy>/<mm>/<dd>/<yyyymmdd>.parquet` (the seed 003 columns).

* **Day**: the run's logical date (the start of its daily interval), or the `day` param.
  Backfill past days with `airflow backfill create --dag-id trip_summary_daily --from-date ... --to-date ...`.
* **Tasks**: `plan` validates `aggregations.json` and cuts the configured devices into shards of
  `shard_size`; `summarise_shard` is mapped over the shards (dynamic task mapping), so Celery or
  Kubernetes workers spread a large lake over many machines, each writing a part file under
  `ROOT/aggregations/_staging/`; `merge` concatenates the parts in device order and replaces the
  day's file atomically (temporary file + rename locally, one upload on S3), then removes the parts.
* **Idempotent**: re-running a day rewrites the same file; a day without trips leaves no file.
* Settings (params default to env): `TRIPS_CONFIG`, `TRIPS_LAKE_ROOT` (a path or `s3://bucket/prefix`),
  `TRIPS_S3_ENDPOINT`, `TRIPS_GAP_MINUTES`, `TRIPS_SHARD_SIZE`. See docs/trips.md.
"""


@dag(
    dag_id="trip_summary_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=["trips", "lake", "seed003"],
    doc_md=DOC,
    params={
        "config": Param(configured_config_path("") or "", type="string", description="path of aggregations.json"),
        "root": Param(configured_lake_root("") or "", type="string", description="lake root (path or s3://...)"),
        "day": Param("", type="string", description="YYYY-MM-DD to summarise instead of the logical date"),
        "shard_size": Param(configured_shard_size(), type="integer", minimum=1, description="devices per mapped task"),
        "gap_minutes": Param(configured_gap_minutes(), type="number", exclusiveMinimum=0,
                             description="a pause longer than this starts a new trip"),
        "cross_midnight": Param(False, type="boolean", description="let trips continue into the next day"),
    },
)
def trip_summary_daily():
    @task
    def plan() -> list[dict]:
        """Validate the configuration and cut its devices into shards (one mapped task each)."""
        from airflow.sdk.exceptions import AirflowFailException

        from trips.config import ConfigError, load_config
        from trips.summary import shard_devices

        context = get_current_context()
        params = context["params"]
        # a missing or malformed configuration fails the run at once: retrying cannot mend it
        if not params["config"] or not params["root"]:
            raise AirflowFailException("set the params config and root (or TRIPS_CONFIG and TRIPS_LAKE_ROOT)")
        try:
            config = load_config(params["config"])
        except ConfigError as e:
            raise AirflowFailException(str(e)) from e
        run = context["dag_run"]
        day = params["day"] or (run.logical_date or run.run_after).date().isoformat()
        shards = shard_devices(config, int(params["shard_size"]))
        job = {"day": day, "config": params["config"], "root": params["root"], "run_key": run.run_id,
               "shard_count": len(shards), "shard_size": int(params["shard_size"]), "gap_minutes": float(params["gap_minutes"]),
               "cross_midnight": bool(params["cross_midnight"])}
        return [{"job": job, "index": i, "devices": devices} for i, devices in enumerate(shards)]

    @task
    def summarise_shard(shard: dict) -> dict:
        from datetime import date

        from trips.config import load_config
        from trips.lake import Lake
        from trips.summary import Options, summarise_day, write_part

        job = shard["job"]
        lake, day = Lake(job["root"]), date.fromisoformat(job["day"])
        # one slice per shard: the DAG then writes the bits `iot trips` writes with the same shard size
        options = Options(gap_minutes=job["gap_minutes"], cross_midnight=job["cross_midnight"],
                          slice_devices=job["shard_size"])
        table = summarise_day(lake, load_config(job["config"]), day, devices=shard["devices"], options=options)
        write_part(lake, day, job["run_key"], shard["index"], table)
        return {"job": job, "index": shard["index"], "rows": table.num_rows}

    @task
    def merge(parts: list[dict]) -> dict:
        from datetime import date

        from trips.lake import Lake
        from trips.summary import merge_parts

        parts = list(parts)
        job = parts[0]["job"]
        rows, path = merge_parts(Lake(job["root"]), date.fromisoformat(job["day"]), job["run_key"],
                                 job["shard_count"])
        return {"day": job["day"], "rows": rows, "path": path, "shards": len(parts)}

    merge(summarise_shard.expand(shard=plan()))


DAG = trip_summary_daily()
