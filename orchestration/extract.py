"""How DAGs run the extract: one dlt load at a time, whichever DAG or worker starts it.

`iot_raw_extract` runs continuously and `iot_master_dag` has an extract task of its own; both use
the one dlt pipeline (working directory, state, load packages), which dlt does not lock. A
PostgreSQL advisory lock in the warehouse serialises them: the second load waits for the first
(a few seconds) instead of racing it, and a killed task's lock goes with its session.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# any constant shared by every caller: "dlt raw extract"
EXTRACT_LOCK_KEY = 0x646C7472


def load_raw_exclusively(**kwargs) -> dict:
    """``dlt_pipelines.load_raw(**kwargs)`` while holding the extract lock."""
    from dlt_pipelines import load_raw
    from iot_core.connections import pg_connect

    with pg_connect("loader", autocommit=True) as conn:
        if not conn.execute("select pg_try_advisory_lock(%s)", (EXTRACT_LOCK_KEY,)).fetchone()[0]:
            log.info("another extract is loading: waiting for it to finish")
            conn.execute("select pg_advisory_lock(%s)", (EXTRACT_LOCK_KEY,))
        try:
            return load_raw(**kwargs)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (EXTRACT_LOCK_KEY,))
