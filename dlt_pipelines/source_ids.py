"""The text key under which a MongoDB ``_id`` of any type is stored in ``raw``.

``raw.<collection>._id`` and ``raw.quarantine.source_id`` are text; MongoDB ids may be strings,
ObjectIds, integers, embedded documents, ... . The encoding is one-to-one, so two different ids
never share a key (``900000`` and ``"900000"`` used to):

* a plain string is itself (what devices and the generators use: readable, joinable);
* a string that starts with ``{`` or ``"``, or holds a character PostgreSQL cannot store (NUL),
  is its JSON string literal (``"..."``, NUL written ``\\u0000``);
* any other type is its canonical MongoDB Extended JSON, which starts with ``{``
  (``{"$oid": "..."}``, ``{"$numberInt": "900000"}``); a value whose Extended JSON does not start
  with ``{`` (``null``, ``true``) is wrapped as ``{"$id": ...}``.

Keys longer than :data:`MAX_KEY_LENGTH` cannot be indexed (a B-tree entry holds ~2.7 kB): such a
document is quarantined under the key's digest (:func:`quarantine_key`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bson import json_util

MAX_KEY_LENGTH = 1024
_CANONICAL = json_util.CANONICAL_JSON_OPTIONS


def _plain(value: str) -> bool:
    return not value.startswith(("{", '"')) and "\x00" not in value


def encode_id(value: Any) -> str:
    if type(value) is str:
        return value if _plain(value) else json.dumps(value)
    if isinstance(value, str):  # a str subclass (bson.code.Code is one) is another BSON type
        return json_util.dumps(value, json_options=_CANONICAL)
    text = json_util.dumps(value, json_options=_CANONICAL)
    return text if text.startswith("{") else f'{{"$id": {text}}}'


def quarantine_key(key: str) -> str:
    """``key`` itself when it can be indexed, else a digest of it (still one-to-one in practice)."""
    if len(key.encode("utf-8", "surrogatepass")) <= MAX_KEY_LENGTH:
        return key
    return f'{{"$sha256": "{hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()}"}}'
