"""Erased users and devices (privacy, DESIGN §4): documents naming them are not loaded.

``iot erase-user`` writes keyed hashes of the erased user id and device ids to
``ops.erasure_tombstones`` before it deletes anything. The extract reads them once per run and
drops every document that names one of them in a personal field of the contract
(``iot_core.contract.PERSONAL_FIELDS``: a reading of an erased device, a registry document of the
user), only counting it (``erased`` in the result): a document written after the erasure, or a
change the extract had not read yet when the erasure ran, never brings the data back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from iot_core.contract import PERSONAL_FIELDS
from iot_core.pseudonyms import keyed_hash

_KINDS = {"user_id": "user", "device_id": "device"}


def _paths(collection: str) -> list[tuple[list[str], str]]:
    return [(p.path.split("."), _KINDS[p.category]) for p in PERSONAL_FIELDS
            if p.collection == collection and p.category in _KINDS]


def _values(node, path: list[str]) -> Iterator[str]:
    if not path:
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            yield from (v for v in node if isinstance(v, str))
        return
    if isinstance(node, list):
        for item in node:
            yield from _values(item, path)
    elif isinstance(node, dict) and path[0] in node:
        yield from _values(node[path[0]], path[1:])


def _strings(node) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


@dataclass
class Tombstones:
    hashes: dict[str, frozenset[str]] = field(default_factory=dict)  # kind -> keyed hashes
    _memo: dict[str, bool] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.hashes.values())

    def erased(self, value: str, kind: str) -> bool:
        key = f"{kind}\x1f{value}"
        if key not in self._memo:
            self._memo[key] = keyed_hash(value) in self.hashes.get(kind, frozenset())
        return self._memo[key]

    def names_erased(self, collection: str, doc: dict) -> bool:
        """Whether the document names an erased user or device in a personal field (for a refused
        write, anywhere in the document it carries)."""
        if collection == "rejected_writes":
            return any(self.erased(v, kind) for v in _strings(doc) for kind in ("user", "device"))
        return any(self.erased(v, kind) for path, kind in _paths(collection) for v in _values(doc, path))

    def device_mask(self, devices: pa.Array | pa.ChunkedArray) -> pa.Array | None:
        """For a column of device ids: True where the device is erased (None: none is)."""
        erased = [d for d in pc.unique(devices).to_pylist() if d is not None and self.erased(d, "device")]
        return pc.is_in(devices, value_set=pa.array(erased, pa.string())) if erased else None


def load_tombstones(conn) -> Tombstones:
    if not conn.execute("select to_regclass('ops.erasure_tombstones')").fetchone()[0]:
        return Tombstones()
    hashes: dict[str, set[str]] = {}
    for kind, key_hash in conn.execute("select kind, key_hash from ops.erasure_tombstones"):
        hashes.setdefault(kind, set()).add(key_hash)
    return Tombstones({k: frozenset(v) for k, v in hashes.items()})
