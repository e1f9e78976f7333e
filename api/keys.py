"""API keys: random tokens shown once, stored only as SHA-256 hashes in ``auth.api_keys``.

Keys are 32 random bytes, so a plain (unsalted) SHA-256 is not guessable and lets the API look
a presented key up by its hash in one indexed query.

The table is created by ``warehouse/init/02_warehouse_schemas.sql`` in the ``auth`` schema,
which only the superuser writes (the role behind ``iot api-key``) and only the API role reads:
no pipeline role (the transformer owns ``ops`` and runs every dbt model) can mint a key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from iot_core.connections import pg_connect

KEY_PREFIX = "iot_"
# the role that manages keys (`iot api-key create/revoke/list`)
ADMIN_ROLE = "superuser"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


def create_key(name: str) -> tuple[str, str]:
    """Create a key; returns (key_id, the key itself — shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(4)
    with pg_connect(ADMIN_ROLE) as conn:
        conn.execute("insert into auth.api_keys (key_id, name, key_hash) values (%s, %s, %s)",
                     (key_id, name, hash_key(key)))
    return key_id, key


def revoke_key(key_id: str) -> bool:
    with pg_connect(ADMIN_ROLE) as conn:
        cur = conn.execute("update auth.api_keys set revoked_at = now() where key_id = %s and revoked_at is null",
                           (key_id,))
        return cur.rowcount == 1


def list_keys() -> list[ApiKey]:
    with pg_connect(ADMIN_ROLE) as conn:
        rows = conn.execute("select key_id, name, created_at, revoked_at from auth.api_keys order by created_at")
        return [ApiKey(*r) for r in rows]


def is_valid(key: str, conn) -> bool:
    """True when ``key`` exists and is not revoked (``conn``: an API-role connection)."""
    row = conn.execute("select 1 from auth.api_keys where key_hash = %s and revoked_at is null",
                       (hash_key(key),)).fetchone()
    return row is not None
