"""`iot demo` (`make demo`): a week of generated data through every stage, then a summary.

Needs the stack from `make up` (PostgreSQL, MongoDB, MLflow). Steps: backfill 7 days of generated
readings -> extract (MongoDB -> raw) -> transform (dbt: stage, agg) -> train the forecast candidates
-> replay the forecast over the last two hours (so actual and predicted can be compared and the
bandit collects rewards) and forecast once from the newest reading -> agg.forecast_accuracy ->
summary and a PNG of actual against predicted IAQ for one device.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import click


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
              help="past minutes to replay the forecast over before the final cycle")
def command(days: int, skip_load: bool, replay_minutes: int) -> None:
    """Backfill a week, run extract -> transform -> train -> forecast once, print a summary and save a plot."""
    from tqdm import tqdm

    from iot_core.connections import pg_connect
    from iot_core.settings import get_settings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if not skip_load:
        _iot("generate", "--backfill", str(days))
        # the extract reads up to a settle delay behind the clock (writes still in flight): wait it
        # out, or the backfill's last second (today's readings, the wearables written last) would
        # wait for the next extract
        from dlt_pipelines.pipeline import settle_seconds

        time.sleep(settle_seconds() + 0.5)
        _iot("extract")
        _iot("transform")

    from ml import registry
    from ml.forecasting import run_forecast
    from ml.report import current_candidates, latest_predictions, plot_actual_vs_predicted, rows_per_layer
    from ml.training import NotEnoughData, train_candidates

    with pg_connect("transformer", settings=settings) as conn:
        try:
            latest = conn.execute("select max(time) from stage.iaq_minutely").fetchone()[0]
        except Exception as e:  # noqa: BLE001 - any failure here means stage is not built
            raise StepFailed(f"stage.iaq_minutely is not readable ({e}); did `iot transform` run?") from e
    if latest is None:
        raise StepFailed("stage.iaq_minutely is empty: no IAQ readings reached stage")

    click.secho("\n==> training the forecast candidates", bold=True)
    try:
        train_candidates(end=latest + timedelta(minutes=1), days=days, stride=2,
                         params={"lightgbm": {"n_estimators": 100}, "mlp": {"max_iter": 100}})
    except NotEnoughData as e:
        raise StepFailed(str(e)) from e

    click.secho(f"\n==> forecasting: replaying the last {replay_minutes} minutes, then from the newest reading",
                bold=True)
    start = latest - timedelta(minutes=replay_minutes)
    for m in tqdm(range(replay_minutes + 1), desc="forecast cycles", unit="cycle"):
        summary = run_forecast(start + timedelta(minutes=m), settings=settings)

    click.secho("\n==> agg.forecast_accuracy (dbt)", bold=True)
    accuracy_note = ""
    try:
        from dbt_project.runner import build

        build(["forecast_accuracy"])
    except Exception as e:  # noqa: BLE001 - the summary is still worth printing
        accuracy_note = f"(agg.forecast_accuracy not built: {e})"

    with pg_connect("transformer", settings=settings) as conn:
        layers = rows_per_layer(conn)
        candidates = current_candidates(conn)
        device = conn.execute("select device_id from ml.predictions where issued_at = (select max(issued_at)"
                              " from ml.predictions) order by device_id limit 1").fetchone()
        device = device[0] if device else None
        sample = latest_predictions(conn, device) if device else []
        accuracy = []
        if not accuracy_note:
            accuracy = conn.execute(
                "select model_name, sum(predictions), sum(mae * predictions) / sum(predictions),"
                " sum(persistence_mae * predictions) / sum(predictions) from agg.forecast_accuracy"
                " group by model_name order by 3").fetchall()
        png = None
        if device:
            png = plot_actual_vs_predicted(conn, device, latest - timedelta(minutes=replay_minutes + 60),
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
    click.echo("\nvalidation MAE of each model (IAQ units) against persistence:")
    for name, version, mae, pmae, ratio in candidates:
        click.echo(f"  {name:<12} v{version:<4} MAE {mae:7.3f}   persistence {pmae:7.3f}   ratio {ratio:5.3f}")
    if accuracy:
        click.echo("\nrealised error in agg.forecast_accuracy (replayed cycles):")
        for name, n, mae, pmae in accuracy:
            click.echo(f"  {name:<12} {int(n):>7} predictions  MAE {mae:7.3f}   persistence {pmae:7.3f}")
    elif accuracy_note:
        click.echo(f"\n{accuracy_note}")
    click.echo(f"\nchampion (UCB1's current choice): {champion_text}")
    click.echo(f"last cycle: {summary['devices_predicted']} devices predicted, {summary['devices_skipped']} skipped"
               f" {summary['skipped']['reasons'] or ''}")
    if sample:
        click.echo(f"\nsample predictions for {device} (issued at {sample[0][5]:%H:%M} UTC by {sample[0][3]}):")
        for t, name, value, *_ in sample:
            if name in ("iaq~1", "iaq~5", "iaq~10", "iaq~15"):
                click.echo(f"  {t:%H:%M}  {name:<7} {value:8.2f}")
    if png:
        click.echo(f"\nplot of actual against predicted IAQ: {png}")
