"""`iot export-csv`: seed 000's CSV exports of the sensor readings, outside Airflow."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from iot_core.settings import get_settings


def _today() -> date:
    return datetime.now(ZoneInfo(get_settings().day_timezone)).date()


@click.command(name="export-csv")
@click.option("--day", "day", type=click.DateTime(["%Y-%m-%d"]),
              help="One day -> sensors/<yyyy-mm-dd>/raw.csv.")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]),
              help="First day of a range -> sensors/export/<from>.<to>/raw.csv (with --to).")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the range, inclusive.")
@click.option("--latest", type=click.IntRange(min=1),
              help="The N days ending yesterday -> sensors/latest/<N>-days/raw.csv.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              show_default="$EXPORT_DIR or .local/exports", help="Export directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(day, first, last, latest, root, as_json):
    """Write the wide CSV (time, deviceId, one column per measure) of stage.stg_sensor_readings.

    Days are calendar days in DAY_TIMEZONE; files are replaced atomically.
    """
    from exports import sensor_csv

    chosen = [name for name, value in (("--day", day), ("--from/--to", first or last), ("--latest", latest)) if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --day, --from/--to or --latest")
    if day:
        result = sensor_csv.export_day(day.date(), root=root)
    elif latest:
        result = sensor_csv.export_latest(latest, _today() - timedelta(days=1), root=root)
    else:
        if not (first and last):
            raise click.UsageError("--from and --to go together")
        result = sensor_csv.export_range(first.date(), last.date(), root=root)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
        click.echo(f"{result.rows} rows ({result.start:%Y-%m-%d %H:%M %Z} .. {result.end:%Y-%m-%d %H:%M %Z}) "
                   f"-> {result.path}")
