"""`iot demo --skip-load` on the test servers: training, forecast replay, accuracy, summary and PNG.

The load steps (generate, extract, transform) belong to other areas and are tested there; here
stage.iaq_minutely is filled directly."""

from __future__ import annotations

from datetime import UTC, datetime

from click.testing import CliRunner
from ml_testdata import reset_iaq_minutely, reset_ml_tables, synthetic_iaq


def test_demo_prints_the_summary_and_saves_a_plot(platform, mlflow_backend):
    from iot_cli.commands.demo import command

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    reset_iaq_minutely(synthetic_iaq(2, 2 * 1440, end=now, seed=3))
    reset_ml_tables()
    result = CliRunner().invoke(command, ["--skip-load", "--days", "2", "--replay-minutes", "20"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = result.output
    assert "rows per layer" in out and "stage" in out and "ml" in out
    for name in ("persistence", "damped_trend", "ridge", "lightgbm", "mlp"):
        assert name in out
    assert "walk-forward validation" in out and "regret" in out
    assert "champion (the selection's current choice):" in out
    assert "unknown" not in out.split("champion")[1].split("\n")[0]
    assert "iaq~15" in out
    png = mlflow_backend.local_dir / "demo"
    files = list(png.glob("forecast_*.png"))
    assert files and files[0].stat().st_size > 10_000
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
