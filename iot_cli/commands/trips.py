"""`iot trips`: summarise the trips of a vehicle-logger Parquet lake, one output file per day.

Imports stay small on purpose (click, the trips package, DuckDB when the job starts): no pandas or
pyarrow on a local lake, which keeps the command's start-up near 0.3 s."""

from __future__ import annotations

import logging
from datetime import date

import click

from trips.config import (
    ConfigError,
    configured_config_path,
    configured_gap_minutes,
    configured_lake_root,
    load_config,
)
from trips.lake import Lake
from trips.summary import Options, run_days


@click.command(name="trips")
@click.option("--config", "config_path", default=lambda: configured_config_path(), show_default="$TRIPS_CONFIG",
              help="aggregations.json (seed 003 format).")
@click.option("--root", default=lambda: configured_lake_root(), show_default="$TRIPS_LAKE_ROOT",
              help="Lake root: a directory or s3://bucket/prefix.")
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last day, inclusive (default: --start).")
@click.option("--gap-minutes", type=float, default=lambda: configured_gap_minutes(), show_default="10",
              help="A pause longer than this starts a new trip.")
@click.option("--cross-midnight/--split-at-midnight", default=False, show_default=True,
              help="Let a trip continue into the next day's files (the seed splits trips at midnight).")
@click.option("--s3-endpoint", default=None, help="S3-compatible endpoint URL (default $TRIPS_S3_ENDPOINT or AWS).")
@click.option("--threads", type=click.IntRange(min=1), default=None, show_default="all cores",
              help="Worker threads; the output does not depend on it.")
def command(config_path, root, start, end, gap_minutes, cross_midnight, s3_endpoint, threads):
    """Write ROOT/aggregations/tripsummary/yyyy/mm/dd/yyyymmdd.parquet for each day from START to END."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not config_path:
        raise click.UsageError("give --config or set TRIPS_CONFIG")
    if not root:
        raise click.UsageError("give --root or set TRIPS_LAKE_ROOT")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    first: date = start.date()
    last: date = end.date() if end else first
    if last < first:
        raise click.UsageError(f"--end {last} is before --start {first}")
    lake = Lake(root, s3_endpoint=s3_endpoint)
    options = Options(gap_minutes=gap_minutes, cross_midnight=cross_midnight, threads=threads)
    results = run_days(lake, config, first, last, options=options, progress=True)
    failed_days = 0
    for day, rows, path, report in results:
        if path:
            click.echo(f"{day}: {rows} rows -> {path}")
        elif report.complete:
            click.echo(f"{day}: {rows} rows (no trips, no file)")
        else:
            click.echo(f"{day}: {rows} rows (no file written; an existing one is kept)")
        for file, reason in report.skipped_files.items():
            click.echo(f"  skipped {file}: {reason}")
        for device, reason in report.failed_devices.items():
            click.echo(f"  FAILED device {device} (left out of the day): {reason}")
        failed_days += not report.complete
    if failed_days:
        # the other devices' rows are written; the exit status tells a scheduler that some are missing
        raise click.ClickException(f"{failed_days} day(s) with failed devices; see above")
