"""PostgreSQL advisory locks that several packages take on the same things.

The extract (dlt_pipelines) and erasure (privacy) must not run at once; dbt's models (macros/
model_lock.sql) and erasure must not either. The keys live here so both sides take the same lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from iot_core.connections import pg_connect

log = logging.getLogger(__name__)

# Any constant every caller shares ("dltr"): one load into raw at a time, and none during an erasure.
EXTRACT_LOCK_KEY = 0x646C7472
# The two-int4 namespace of the per-model locks dbt takes (dbt_project/macros/model_lock.sql);
# the second key is hashtext('<schema>.<model>').
MODEL_LOCK_NAMESPACE = 1684174880


@contextmanager
def extract_lock(role: str = "loader", settings=None) -> Iterator[None]:
    """Hold the extract lock (session level, on a connection of its own) for the ``with`` block.

    The lock lives in the warehouse, so it holds across processes and workers; a second caller
    waits instead of racing the first, and a killed process's lock goes with its session."""
    with pg_connect(role, autocommit=True, settings=settings) as conn:
        if not conn.execute("select pg_try_advisory_lock(%s)", (EXTRACT_LOCK_KEY,)).fetchone()[0]:
            log.info("another process holds the extract lock (a load or an erasure): waiting for it")
            conn.execute("select pg_advisory_lock(%s)", (EXTRACT_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (EXTRACT_LOCK_KEY,))


def lock_models(conn, relations: list[str]) -> None:
    """Take the transaction-level lock of each dbt model ``schema.table`` in ``relations`` (and of
    dbt's on-run-start step) on ``conn``: no dbt build of them runs until the transaction ends."""
    for name in ["on-run-start", *sorted(relations)]:
        conn.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", (MODEL_LOCK_NAMESPACE, name))
