"""`iot demo` (`make demo`): a week of generated data through every stage, then a summary.

Needs the stack from `make up` (PostgreSQL, MongoDB, MLflow). Steps: backfill 7 days of generated
readings -> extract (MongoDB -> raw) -> transform (dbt: stage, agg) -> pick the two hours of the
last day where a device's IAQ moves most -> train the forecast candidates on the days *before*
them (walk-forward validation over the last weekdays picks each one's parameters) -> replay the
forecast cycle minute by minute over those two hours (the selection chooses, every arm is scored
as the actuals arrive) and forecast once from the newest reading -> agg.forecast_accuracy and
agg.forecast_regret -> summary and a PNG of actual against predicted IAQ for that device.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import click

# model sizes that keep the demo's training to a minute or two on 2 cores (production: ml.models grids)
DEMO_MODEL_PARAMS = {"lightgbm": {"n_estimators": 60}, "mlp": {"max_iter": 60}}


class StepFailed(click.ClickException):
    pass


def _iot(*args: str) -> None:
    """Run another `iot` sub-command in its own process (its own progress output)."""
    import importlib.util

    from iot_cli.main import COMMANDS

    module = COMMANDS.get(args[0])
    if module is None or importlib.util.find_spec(f"iot_cli.commands.{module}") is None:
        raise StepFailed(f"`iot {args[0]}` is not available yet in this checkout: the demo stops here")
    click.secho(f"\n==> iot {' '.join(args)}", bold=True)
    r = subprocess.run([sys.executable, "-m", "iot_cli.main", *args])
    if r.returncode != 0:
        raise StepFailed(f"`iot {' '.join(args)}` failed (exit {r.returncode}); see its output above")


@click.command("demo")
@click.option("--days", type=int, default=7, show_default=True, help="days of generated history")
@click.option("--skip-load", is_flag=True, help="reuse the data already loaded (skip generate/extract/transform)")
@click.option("--replay-minutes", type=click.IntRange(min=0), default=120, show_default=True,
              help="past minutes to replay the forecast over (the most eventful of the last day)")
def command(days: int, skip_load: bool, replay_minutes: int) -> None:
    """Backfill a week, run extract -> transform -> train -> forecast once, print a summary and save a plot."""
    from tqdm import tqdm

    from iot_core.connections import pg_connect
    from iot_core.settings import get_settings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if not skip_load:
        _iot("generate", "--backfill", str(days))
        _iot("extract")
        _iot("transform")

    from ml import registry
    from ml.forecasting import run_forecast
    from ml.report import (
        current_candidates,
        latest_predictions,
        most_moving_window,
        plot_actual_vs_predicted,
        rows_per_layer,
    )
    from ml.training import NotEnoughData, train_candidates

    with pg_connect("transformer", settings=settings) as conn:
        try:
            latest = conn.execute("select max(time) from stage.iaq_minutely").fetchone()[0]
        except Exception as e:  # noqa: BLE001 - any failure here means stage is not built
            raise StepFailed(f"stage.iaq_minutely is not readable ({e}); did `iot transform` run?") from e
        if latest is None:
            raise StepFailed("stage.iaq_minutely is empty: no IAQ readings reached stage")
        # replay where there is something to forecast, after everything the models are trained on
        window = most_moving_window(conn, latest - timedelta(minutes=15), replay_minutes) if replay_minutes else None
    replay_device, replay_start = window if window else (None, latest - timedelta(minutes=replay_minutes))

    click.secho(f"\n==> training the forecast candidates on the {days} days before {replay_start:%Y-%m-%d %H:%M} UTC",
                bold=True)
    started = time.perf_counter()
    try:
        results = train_candidates(end=replay_start, days=days, stride=3, params=DEMO_MODEL_PARAMS)
    except NotEnoughData as e:
        raise StepFailed(str(e)) from e
    training_seconds = time.perf_counter() - started

    click.secho(f"\n==> forecasting: replaying {replay_minutes} minutes from {replay_start:%H:%M} UTC"
                f"{f' (where {replay_device} moves most)' if replay_device else ''}, then from the newest reading",
                bold=True)
    for m in tqdm(range(replay_minutes), desc="forecast cycles", unit="cycle"):
        run_forecast(replay_start + timedelta(minutes=m), settings=settings)
    summary = run_forecast(latest, settings=settings)

    click.secho("\n==> agg.forecast_accuracy and agg.forecast_regret (dbt)", bold=True)
    accuracy_note = ""
    try:
        from dbt_project.runner import build

        build(["forecast_accuracy", "forecast_regret"])
    except Exception as e:  # noqa: BLE001 - the summary is still worth printing
        accuracy_note = f"(agg.forecast_accuracy / agg.forecast_regret not built: {e})"

    with pg_connect("transformer", settings=settings) as conn:
        layers = rows_per_layer(conn)
        candidates = current_candidates(conn)
        device = replay_device or (conn.execute(
            "select device_id from ml.predictions where issued_at = (select max(issued_at) from ml.predictions)"
            " order by device_id limit 1").fetchone() or [None])[0]
        sample = latest_predictions(conn, device) if device else []
        accuracy, regret = [], []
        if not accuracy_note:
            accuracy = conn.execute(
                "select model_name, sum(predictions), sum(mae * predictions) / sum(predictions),"
                " sum(persistence_mae * predictions) / sum(predictions) from agg.forecast_accuracy"
                " group by model_name order by 3").fetchall()
            regret = conn.execute(
                "select sum(points), sum(system_mae * points) / sum(points), sum(persistence_mae * points) / sum(points),"
                " sum(regret_vs_best_arm * points) / sum(points), sum(regret_vs_persistence * points) / sum(points),"
                " string_agg(distinct best_arm, ', ') from agg.forecast_regret").fetchone()
        png = None
        if device:
            png = plot_actual_vs_predicted(conn, device, replay_start - timedelta(minutes=60),
                                           replay_start + timedelta(minutes=replay_minutes + 15),
                                           settings.local_dir / "demo" / f"forecast_{device}.png")
    try:
        champion = registry.configure(settings).get_model_version_by_alias(registry.REGISTERED_MODEL,
                                                                           registry.CHAMPION)
        champion_text = f"{champion.tags.get('candidate', '?')} (version {champion.version})"
    except Exception as e:  # noqa: BLE001
        champion_text = f"unknown ({e})"

    click.secho("\n==================== demo summary ====================", bold=True)
    click.echo(f"newest IAQ minute in stage: {latest:%Y-%m-%d %H:%M} UTC (now {datetime.now(UTC):%H:%M})")
    click.echo("\nrows per layer:")
    for schema, tables in layers.items():
        click.echo(f"  {schema:<8} {sum(tables.values()):>10,}  "
                   + ", ".join(f"{t} {n:,}" for t, n in tables.items() if n))
    click.echo(f"\ntraining: {len(results)} candidates in {training_seconds:.0f} s (walk-forward tuning "
               f"{sum(r.tuning_seconds for r in results):.0f} s, final fits {sum(r.fit_seconds for r in results):.0f} s)")
    fold_days = next((r.fold_days for r in results if r.fold_days), [])
    click.echo(f"\nwalk-forward validation (each day forecast by a model fitted on the days before it; days "
               f"{', '.join(fold_days) or 'none'}): MAE as a ratio to persistence")
    click.echo(f"  {'model':<13} {'version':>7} {'h=1':>7} {'h=5':>7} {'h=15':>7} {'mean':>7}  parameters")
    persistence_h = next((r.mae_by_horizon for r in results if r.candidate == "persistence"), None)
    for name, version, _mae, _pmae, ratio, by_h, params, _days in candidates:
        cells = []
        for h in (1, 5, 15):
            v, p = (by_h or [None] * 15)[h - 1], (persistence_h or [None] * 15)[h - 1]
            cells.append(f"{v / p:7.3f}" if v is not None and p else f"{'-':>7}")
        click.echo(f"  {name:<13} v{version:<6} {' '.join(cells)} {ratio if ratio is not None else float('nan'):7.3f}"
                   f"  {params or ''}")
    if accuracy:
        click.echo("\nrealised error of every arm in agg.forecast_accuracy (replayed cycles; only the chosen arm's "
                   "forecasts are published):")
        for name, n, mae, pmae in accuracy:
            click.echo(f"  {name:<13} {int(n):>7} predictions  MAE {mae:7.3f}   persistence {pmae:7.3f}"
                       f"   ratio {mae / pmae if pmae else float('nan'):6.3f}")
    if regret and regret[0]:
        points, system, pers, vs_best, vs_pers, best = regret
        click.echo(f"\nselection (agg.forecast_regret, {int(points)} scored points): published forecasts MAE "
                   f"{system:.3f} against persistence {pers:.3f} (ratio {system / pers if pers else float('nan'):.3f}); "
                   f"regret per point {vs_best:+.3f} against the best arm in hindsight ({best}), "
                   f"{vs_pers:+.3f} against persistence")
    elif accuracy_note:
        click.echo(f"\n{accuracy_note}")
    click.echo(f"\nchampion (the selection's current choice): {champion_text}")
    click.echo(f"last cycle: {summary['devices_predicted']} devices predicted, {summary['devices_skipped']} skipped"
               f" {summary['skipped']['reasons'] or ''}")
    if sample:
        click.echo(f"\nnewest forecast for {device} (issued at {sample[0][5]:%H:%M} UTC by {sample[0][3]}):")
        for t, name, value, *_ in sample:
            if name in ("iaq~1", "iaq~5", "iaq~10", "iaq~15"):
                click.echo(f"  {t:%H:%M}  {name:<7} {value:8.2f}")
    if png:
        click.echo(f"\nplot of actual against predicted IAQ: {png}")
