"""Daily trip summary of the vehicle-logger Parquet lake (seed 003); thin DAG over trips.summary."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, get_current_context, task

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
* **Failures**: an unreadable file (empty, truncated, not Parquet) is skipped with its reason and the
  rest of its device is summarised. A device that fails even so is left out: its shard writes the
  other devices' rows and then fails (red, with retries); `merge` still writes the day from the parts
  there are and then fails naming the devices. The day's file lists both in its footer
  (`trips:skipped_files`, `trips:failed_devices`). Clear the failed shard with `merge` to complete it.
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
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from trips.config import ConfigError, load_config
        from trips.summary import shard_devices

        context = get_current_context()
        params = context["params"]
        # a missing or malformed configuration fails the run at once: retrying cannot mend it
        if not params["config"] and not params["root"]:
            # no lake configured: the trip summary is not in use here, which is no failure
            raise AirflowSkipException("no lake configured: set TRIPS_CONFIG and TRIPS_LAKE_ROOT (or the params "
                                       "config and root) to summarise trips")
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
        """Summarise the shard's devices into a part file; fail (after writing the others' rows) when a
        device failed, so the shard shows red in the grid and its retries run."""
        from datetime import date

        from trips.config import load_config
        from trips.lake import Lake
        from trips.summary import Options, TripSummaryIncomplete, summarise_devices, write_part

        job = shard["job"]
        lake, day = Lake(job["root"]), date.fromisoformat(job["day"])
        # one slice per shard: the DAG then writes the bits `iot trips` writes with the same shard size
        options = Options(gap_minutes=job["gap_minutes"], cross_midnight=job["cross_midnight"],
                          slice_devices=job["shard_size"])
        table, report = summarise_devices(lake, load_config(job["config"]), day, devices=shard["devices"],
                                          options=options)
        write_part(lake, day, job["run_key"], shard["index"], table, report)
        if not report.complete:
            raise TripSummaryIncomplete(day, report)
        return {"index": shard["index"], "rows": table.num_rows, "skipped_files": report.skipped_files}

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)  # plan is one of the upstreams
    def merge(shards: list[dict]) -> dict:
        """Runs when every shard is done, failed or not: writes the day from the parts there are, then
        fails (naming the devices) if any shard failed. The failed shards' parts stay; clearing those
        shards together with this task completes the day."""
        from datetime import date

        from airflow.sdk.exceptions import AirflowFailException

        from trips.lake import Lake
        from trips.summary import merge_parts

        job = shards[0]["job"]
        rows, path, report = merge_parts(Lake(job["root"]), date.fromisoformat(job["day"]), job["run_key"],
                                         [shard["devices"] for shard in shards])
        if not report.complete:
            failed = "; ".join(f"{device}: {reason}" for device, reason in report.failed_devices.items())
            raise AirflowFailException(f"{job['day']}: wrote {rows} rows without {len(report.failed_devices)}"
                                       f" failed device(s): {failed}")
        return {"day": job["day"], "rows": rows, "path": path, "shards": len(shards),
                "skipped_files": report.skipped_files}

    shards = plan()
    summarise_shard.expand(shard=shards) >> merge(shards)


DAG = trip_summary_daily()
