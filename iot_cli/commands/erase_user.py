"""`iot erase-user USER_ID`: the right to erasure across MongoDB and every warehouse layer."""

from __future__ import annotations

import logging

import click


@click.command("erase-user")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def command(user_id: str, yes: bool) -> None:
    """Delete USER_ID and their devices' data from MongoDB, raw, stage, agg, curated and ml,
    and record the erasure (a hash of the id, counts per table) in ops.erasures."""
    if not yes:
        click.confirm(f"Erase every trace of user {user_id!r}? This cannot be undone", abort=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from privacy import erase_user

    result = erase_user(user_id, progress=True)
    total = sum(result["deleted"].values())
    click.echo(f"erased user {user_id}: {total} rows/documents from {len(result['deleted'])} places, "
               f"{len(result['devices'])} device(s); recorded as {result['user_id_sha256'][:12]}… in ops.erasures")
