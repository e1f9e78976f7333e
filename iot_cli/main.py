"""The `iot` command-line tool. Each sub-command lives in ``iot_cli/commands/<name>.py`` and is
imported only when used, so `iot --help` stays fast."""

from __future__ import annotations

import importlib
import importlib.util
import os

import click

# command name -> module in iot_cli.commands exposing a click command called `command`
COMMANDS = {
    "stack": "stack",
    "generate": "generate",
    "extract": "extract",
    "transform": "transform",
    "erase-user": "erase_user",
    "export-csv": "export_csv",
    "train": "train",
    "forecast": "forecast",
    "backtest": "backtest",
    "demo": "demo",
    "trips": "trips",
    "api-key": "api_key",
    "retention": "retention",
    "alerts": "alerts",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, mod in COMMANDS.items() if importlib.util.find_spec(f"iot_cli.commands.{mod}"))

    def get_command(self, ctx, name):
        mod = COMMANDS.get(name)
        if mod is None or importlib.util.find_spec(f"iot_cli.commands.{mod}") is None:
            return None
        return importlib.import_module(f"iot_cli.commands.{mod}").command


# Usage telemetry off for every library, in this process and everything it starts (the stack's
# services inherit it): the platform runs on machines without internet, and MLflow's telemetry
# thread edits os.environ while requests iterates it, which failed `iot demo`'s first MLflow
# call with KeyError '_MLFLOW_TELEMETRY_SESSION_ID'. Compose sets the same variables.
TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "RUNTIME__DLTHUB_TELEMETRY": "false",
                 "SCARF_ANALYTICS": "false"}


@click.group(cls=LazyGroup)
def cli() -> None:
    """IoT ELT platform: local stack, simulators, extract, transform, forecasting, trip summaries."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)


if __name__ == "__main__":
    cli()
