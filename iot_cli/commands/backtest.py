"""`iot backtest`: the walk-forward backtest of the production forecasting on any series (a CSV)."""

from __future__ import annotations

import json
import logging
import sys

import click


@click.command("backtest")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="CSV of readings: a time column (with UTC offsets) and a value column")
@click.option("--time-column", required=True, help="column with the reading times")
@click.option("--value-column", required=True, help="column with the values")
@click.option("--device-column", default=None, help="column naming the device (default: one series)")
@click.option("--naive-timezone", default=None, help="zone of times without an offset (default: refuse them)")
@click.option("--days", type=float, default=None, help="days each training fits on (default FORECAST_TRAINING_DAYS, as production)")
@click.option("--timezone", default=None, help="zone of the Monday 00:00 schedule and of days (default: TRAINING_TIMEZONE)")
@click.option("--candidate", "candidates", multiple=True, help="only these candidates (persistence always included)")
@click.option("--model-params", default="{}", help='per-candidate overrides as JSON, e.g. \'{"lightgbm": {"n_estimators": 50}}\'')
@click.option("--bootstrap", type=int, default=2000, show_default=True, help="bootstrap draws over days for the intervals")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON (progress goes to stderr)")
def command(csv_path, time_column, value_column, device_column, naive_timezone, days, timezone, candidates,
            model_params, bootstrap, as_json) -> None:
    """Walk-forward backtest: each day forecast by models trained only on earlier data (weekly, as in
    production), MAE per horizon as a ratio to persistence with bootstrap intervals over days, for
    every candidate and for the model selection."""
    from iot_core.settings import get_settings
    from ml.backtest import BacktestConfig, format_table, read_csv_series, run_backtest, to_json

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    try:
        series = read_csv_series(csv_path, time_column, value_column, device_column, naive_timezone)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    report = series.report()
    for problem, info in report["rows_left_out"].items():
        click.echo(f"left out {info['rows']} of {report['rows']} rows: {problem} (first at line {info['first_line']})",
                   err=True)
    config = BacktestConfig(days=days, timezone=timezone or settings.training_timezone,
                            candidates=list(candidates) or None, params=json.loads(model_params),
                            max_gap_minutes=settings.forecast_max_gap_minutes,
                            max_train_windows=settings.forecast_max_train_windows,
                            window_rounds=settings.forecast_selection_window_rounds, bootstrap=bootstrap)
    try:
        result = run_backtest(series.observations, config, progress=lambda msg: click.echo(msg, err=True))
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    result["input"] = {"csv": str(csv_path), "time_column": time_column, "value_column": value_column, **report}
    click.echo(to_json(result) if as_json else format_table(result))
