"""`iot forecast`: run one forecast cycle now (what iot_forecast runs every minute)."""

from __future__ import annotations

import logging
from datetime import datetime

import click


@click.command("forecast")
@click.option("--at", "issue_time", type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]), default=None,
              help="issue minute in UTC (default: now)")
@click.option("--staleness-minutes", type=int, default=10, show_default=True,
              help="skip devices whose latest reading is older than this")
def command(issue_time: datetime | None, staleness_minutes: int) -> None:
    """Choose a model (sliding-window UCB) and write the next 15 minutes of IAQ per active device to ml.predictions."""
    from datetime import UTC

    from ml.forecasting import NoTrainedModels, run_forecast

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = run_forecast(issue_time.replace(tzinfo=UTC) if issue_time else None,
                               staleness_minutes=staleness_minutes)
    except NoTrainedModels as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{summary['issue_minute']:%Y-%m-%d %H:%M} UTC: model {summary['model_name']} "
               f"v{summary['model_version']}, {summary['devices_predicted']} devices predicted "
               f"({summary['rows_written']} rows), {summary['devices_skipped']} skipped "
               f"{summary['skipped']['reasons'] or ''}")
