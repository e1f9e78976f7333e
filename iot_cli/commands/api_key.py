"""`iot api-key create NAME | revoke KEY_ID | list`: manage the API's keys (stored hashed)."""

import click


@click.group("api-key")
def command() -> None:
    """Create, revoke and list API keys (the key is printed once, only its hash is stored)."""


@command.command("create")
@click.argument("name")
def create(name: str) -> None:
    from api.keys import create_key

    key_id, key = create_key(name)
    click.echo(f"key id: {key_id}\nkey:    {key}\n(store it now: it cannot be shown again)")


@command.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    from api.keys import revoke_key

    if not revoke_key(key_id):
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"revoked {key_id}")


@command.command("list")
def list_() -> None:
    from api.keys import list_keys

    for k in list_keys():
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        click.echo(f"{k.key_id}  {k.name:<24} created {k.created_at:%Y-%m-%d %H:%M}  {state}")
