"""`iot train`: fit, log and register every forecast candidate now (what iot_train_models runs)."""

from __future__ import annotations

import json
import logging

import click


@click.command("train")
@click.option("--days", type=float, default=None, help="days of stage.iaq_minutely to train on (default FORECAST_TRAINING_DAYS)")
@click.option("--stride", type=int, default=1, show_default=True, help="minutes between training windows")
@click.option("--candidate", "candidates", multiple=True, help="train only these (persistence always included)")
@click.option("--model-params", default="{}", help='per-candidate overrides as JSON, e.g. \'{"mlp": {"max_iter": 50}}\'')
def command(days: float | None, stride: int, candidates: tuple[str, ...], model_params: str) -> None:
    """Train the IAQ forecast candidates and register a version of each in MLflow."""
    from ml.training import NotEnoughData, train_candidates

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        results = train_candidates(days=days, stride=stride, candidates=list(candidates) or None,
                                   params=json.loads(model_params))
    except NotEnoughData as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{'candidate':<12} {'version':>7} {'val MAE':>9} {'vs persistence':>15}")
    for r in results:
        click.echo(f"{r.candidate:<12} {r.version:>7} {r.val_mae:>9.3f} {r.mae_ratio:>15.3f}")
