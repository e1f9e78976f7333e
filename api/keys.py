"""API keys: random tokens shown once, stored only as SHA-256 hashes in ``ops.api_keys``.

Keys are 32 random bytes, so a plain (unsalted) SHA-256 is not guessable and lets the API look
a presented key up by its hash in one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from iot_core.connections import pg_connect
from iot_core.settings import get_settings

KEY_PREFIX = "iot_"

_DDL = """
create table if not exists ops.api_keys (
    key_id      text primary key,
    name        text not null,
    key_hash    text not null unique,
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz
)"""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_table() -> None:
    with pg_connect("transformer", autocommit=True) as conn:
        conn.execute(_DDL)
        conn.execute(f'grant select on ops.api_keys to "{get_settings().api_user}"')


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


def create_key(name: str) -> tuple[str, str]:
    """Create a key; returns (key_id, the key itself — shown once, never stored)."""
    ensure_table()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(4)
    with pg_connect("transformer") as conn:
        conn.execute("insert into ops.api_keys (key_id, name, key_hash) values (%s, %s, %s)",
                     (key_id, name, hash_key(key)))
    return key_id, key


def revoke_key(key_id: str) -> bool:
    ensure_table()
    with pg_connect("transformer") as conn:
        cur = conn.execute("update ops.api_keys set revoked_at = now() where key_id = %s and revoked_at is null",
                           (key_id,))
        return cur.rowcount == 1


def list_keys() -> list[ApiKey]:
    ensure_table()
    with pg_connect("transformer") as conn:
        rows = conn.execute("select key_id, name, created_at, revoked_at from ops.api_keys order by created_at")
        return [ApiKey(*r) for r in rows]


def is_valid(key: str, conn) -> bool:
    """True when ``key`` exists and is not revoked (``conn``: an API-role connection)."""
    row = conn.execute("select 1 from ops.api_keys where key_hash = %s and revoked_at is null",
                       (hash_key(key),)).fetchone()
    return row is not None
