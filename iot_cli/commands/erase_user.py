"""`iot erase-user USER_ID`: the right to erasure, everywhere the platform keeps the user's data."""

from __future__ import annotations

import logging

import click


@click.command("erase-user")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def command(user_id: str, yes: bool) -> None:
    """Delete USER_ID and their devices' data from MongoDB, every warehouse schema, the extract's
    local files and the CSV exports; leave tombstones so that later documents of the user or their
    devices are not loaded; record the erasure (a keyed hash of the id, counts per place) in
    ops.erasures. Waits for a running extract and for dbt builds of the models it touches.
    Safe to run again (docs/privacy.md)."""
    if not yes:
        click.confirm(f"Erase every trace of user {user_id!r}? This cannot be undone", abort=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from privacy import erase_user

    result = erase_user(user_id, progress=True)
    total = sum(result["deleted"].values())
    click.echo(f"erased user {user_id}: {total} rows/documents/files from {len(result['deleted'])} places, "
               f"{len(result['devices'])} device(s), in {result['seconds']} s; recorded as "
               f"{result['user_key'][:12]}… in ops.erasures")
