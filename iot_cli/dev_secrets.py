"""The committed development secrets: refuse them in production, and generate real ones.

The secrets are the settings declared secret (``SecretStr`` in ``iot_core/settings.py``, the one
definition) plus what only Docker Compose reads (Grafana's admin password). Their development
values are the ones in the committed ``.env``.

``python -m iot_cli.dev_secrets check [ENV_FILE]``: exits 1, naming each one, when a secret in the
environment (over the values of ``ENV_FILE`` when given) is empty or still has its committed
development value, unless ``IOT_ALLOW_DEV_SECRETS=true``.

``python -m iot_cli.dev_secrets generate``: prints the committed ``.env`` with a fresh random
value for every secret (``> .env.production``; keep it out of version control).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from iot_core.settings import PROJECT_ROOT, Settings

COMMITTED_ENV = PROJECT_ROOT / ".env"
ALLOW_FLAG = "IOT_ALLOW_DEV_SECRETS"
# read by Docker Compose only (Grafana), with this development default in docker-compose.yml
COMPOSE_ONLY_SECRETS = {"GRAFANA_ADMIN_PASSWORD": "admin"}


def secret_names() -> list[str]:
    """Environment names of every secret: the settings declared ``SecretStr``, then Compose's own."""
    names = [name.upper() for name, f in Settings.model_fields.items() if f.annotation is SecretStr]
    return [*names, *COMPOSE_ONLY_SECRETS]


def committed_values(env_file: Path = COMMITTED_ENV) -> dict[str, str]:
    from dotenv import dotenv_values

    values = {k: v or "" for k, v in dotenv_values(env_file).items()}
    return {**COMPOSE_ONLY_SECRETS, **values}


def development_secrets_in_use(environ: Mapping[str, str], env_file: Path = COMMITTED_ENV) -> list[str]:
    """Names of the secrets that are empty or equal to their committed development value."""
    committed = committed_values(env_file)
    in_use = []
    for name in secret_names():
        value = environ.get(name, "")
        if name == "MONGO_PASSWORD" and not environ.get("MONGO_USER"):
            continue  # authentication switched off on purpose (no application user)
        if not value or value == committed.get(name):
            in_use.append(name)
    return in_use


def allowed(environ: Mapping[str, str]) -> bool:
    return environ.get(ALLOW_FLAG, "").strip().lower() in ("1", "true", "yes")


def check(environ: Mapping[str, str] = os.environ, env_file: Path = COMMITTED_ENV) -> int:
    in_use = development_secrets_in_use(environ, env_file)
    if not in_use:
        print("secrets: none of the committed development values is in use")
        return 0
    names = ", ".join(in_use)
    if allowed(environ):
        print(f"secrets: development values in use ({names}); allowed by {ALLOW_FLAG}=true: "
              "never expose this deployment", file=sys.stderr)
        return 0
    print(f"REFUSED: these secrets are empty or still have the committed development value: {names}.\n"
          f"Generate real ones: .venv/bin/python -m iot_cli.dev_secrets generate > .env.production\n"
          f"and start with: docker compose --env-file .env.production up -d\n"
          f"(a development run on this machine only: {ALLOW_FLAG}=true docker compose up -d)", file=sys.stderr)
    return 1


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def generate(env_file: Path = COMMITTED_ENV) -> str:
    """The committed .env with every secret replaced by a fresh random value."""
    fresh = {name: secrets.token_urlsafe(48) for name in secret_names()}
    fresh["AIRFLOW_FERNET_KEY"] = fernet_key()
    fresh["AIRFLOW_JWT_SECRET"] = secrets.token_urlsafe(64)  # at least 64 characters (SHA-512)
    lines, seen = [], set()
    for line in env_file.read_text().splitlines():
        name = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else ""
        if name in fresh:
            lines.append(f"{name}={fresh[name]}")
            seen.add(name)
        else:
            lines.append(line)
    lines += [f"{name}={fresh[name]}" for name in fresh if name not in seen]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        if len(argv) > 1:
            from dotenv import dotenv_values

            return check({**{k: v or "" for k, v in dotenv_values(argv[1]).items()}, **os.environ})
        return check()
    if argv[:1] == ["generate"]:
        sys.stdout.write(generate())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
