"""The `iot` command-line tool. Each sub-command lives in ``iot_cli/commands/<name>.py`` and is
imported only when used, so `iot --help` stays fast."""

from __future__ import annotations

import importlib
import importlib.util

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
    "demo": "demo",
    "trips": "trips",
    "api-key": "api_key",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, mod in COMMANDS.items() if importlib.util.find_spec(f"iot_cli.commands.{mod}"))

    def get_command(self, ctx, name):
        mod = COMMANDS.get(name)
        if mod is None or importlib.util.find_spec(f"iot_cli.commands.{mod}") is None:
            return None
        return importlib.import_module(f"iot_cli.commands.{mod}").command


@click.group(cls=LazyGroup)
def cli() -> None:
    """IoT ELT platform: local stack, simulators, extract, transform, forecasting, trip summaries."""


if __name__ == "__main__":
    cli()
