"""`iot stack up|down|status|logs`: the local platform behind `make up/down/status/logs`."""

from __future__ import annotations

import os
import shutil
import sys

import click

OPTIONAL_SERVICES = ("generator", "api")


def _stack():
    from iot_cli.localstack.stack import Stack
    from iot_core.settings import get_settings

    return Stack(get_settings(), echo=lambda line: click.echo(line))


@click.group("stack")
def command() -> None:
    """Run the platform locally (no Docker): PostgreSQL, MongoDB protocol, Airflow 3, MLflow, simulator, API.

    State (data, pids, logs) lives under LOCAL_DIR (.local/ by default).
    """


@command.command("up")
@click.option("--skip", multiple=True, type=click.Choice(OPTIONAL_SERVICES),
              help="Do not start this service (repeatable).")
def up(skip: tuple[str, ...]) -> None:
    """Start every service that is not running yet and wait until all are healthy."""
    from iot_cli.localstack.process import ServiceError
    from iot_cli.localstack.stack import all_healthy, format_status

    stack = _stack()
    try:
        rows = stack.up(skip=frozenset(skip))
    except ServiceError as e:
        click.echo(f"\nERROR: {e}", err=True)
        click.echo("Services started so far keep running: `make status` shows them, `make down` stops them.",
                   err=True)
        sys.exit(1)
    click.echo("")
    click.echo(format_status(rows))
    click.echo(stack.summary())
    if not all_healthy(rows):
        sys.exit(1)


@command.command("down")
def down() -> None:
    """Stop what `up` started (by pid), in reverse order. Data stays in LOCAL_DIR."""
    _stack().down()


@command.command("status")
def status() -> None:
    """Table of service, pid, health and URL; exits 1 when any service is unhealthy."""
    from iot_cli.localstack.stack import all_healthy, format_status

    rows = _stack().status()
    click.echo(format_status(rows))
    if not all_healthy(rows):
        bad = ", ".join(r.name for r in rows if r.required and not r.healthy)
        click.echo(f"\nunhealthy: {bad}   (see `make logs`; `make up` starts what is missing)", err=True)
        sys.exit(1)


@command.command("logs")
@click.option("--service", "services", multiple=True, help="Only this service's log (repeatable).")
@click.option("--lines", "-n", default=50, show_default=True, help="Lines of history to show first.")
@click.option("--follow/--no-follow", default=True, show_default=True, help="Keep following (tail -F).")
def logs(services: tuple[str, ...], lines: int, follow: bool) -> None:
    """Follow the service logs (tail -F of LOCAL_DIR/logs/*.log and the PostgreSQL log)."""
    files = _stack().log_files()
    if services:
        unknown = sorted(set(services) - set(files))
        if unknown:
            raise click.UsageError(f"no log for {', '.join(unknown)}; known: {', '.join(sorted(files))}")
        files = {k: v for k, v in files.items() if k in services}
    paths = [str(p) for p in files.values() if p.exists()]
    if not paths:
        click.echo("no logs yet: start the stack with `make up`")
        return
    tail = shutil.which("tail")
    if tail is None:  # pragma: no cover - every supported system has tail
        raise click.ClickException("`tail` not found")
    argv = [tail, "-n", str(lines), *(["-F"] if follow else []), *paths]
    sys.stdout.flush()
    os.execv(tail, argv)
