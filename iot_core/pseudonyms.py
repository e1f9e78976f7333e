"""Keyed hashes of personal identifiers (HMAC-SHA256 with the setting PSEUDONYM_SECRET).

The same construction as the warehouse function ``ops.research_id`` (warehouse/init/03_privacy.sql):
erasure records and tombstones name a user or device by this hash, never by the id itself, and
without the secret the hash cannot be reversed or recomputed from a guessed id.
"""

from __future__ import annotations

import hashlib
import hmac

from iot_core.settings import Settings, get_settings


def keyed_hash(value: str, settings: Settings | None = None) -> str:
    secret = (settings or get_settings()).pseudonym_secret.get_secret_value()
    if not secret:
        raise RuntimeError("PSEUDONYM_SECRET is not set: it keys research ids and erasure tombstones (docs/privacy.md)")
    return hmac.new(secret.encode(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
