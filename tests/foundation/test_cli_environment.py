"""What every `iot` command sets up before it runs."""

from __future__ import annotations

import os

from click.testing import CliRunner

from iot_cli.main import TELEMETRY_OFF, cli


def test_usage_telemetry_is_off_for_the_command_and_what_it_starts(monkeypatch):
    """MLflow's telemetry thread edited os.environ while requests iterated it: `iot demo` failed
    with KeyError '_MLFLOW_TELEMETRY_SESSION_ID' at its first MLflow call."""
    for name in TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCARF_ANALYTICS", "true")  # an explicit choice is kept
    result = CliRunner().invoke(cli, ["api-key", "--help"])
    assert result.exit_code == 0, result.output
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true" and os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["RUNTIME__DLTHUB_TELEMETRY"] == "false"
    assert os.environ["SCARF_ANALYTICS"] == "true"
