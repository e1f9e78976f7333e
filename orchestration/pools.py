"""The Airflow pools of the hot path and of batch work, sized from the settings, and their creation.

``python -m orchestration.pools`` creates or resizes them in Airflow's metadata database
(idempotent): the local stack runs it after ``airflow db migrate``, compose's ``airflow-init`` too.
Which task goes to which pool is decided once, in :mod:`orchestration.defaults`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from iot_core.settings import Settings, get_settings
from orchestration.defaults import BATCH_POOL, HOT_POOL


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str


def pool_specs(settings: Settings | None = None) -> list[PoolSpec]:
    """``batch`` gets ``AIRFLOW_BATCH_SLOTS``; ``hot`` the rest of ``AIRFLOW_PARALLELISM`` (at least 1),
    so the executor always has a slot for the hot path however much batch work is queued."""
    s = settings or get_settings()
    if not 0 < s.airflow_batch_slots < s.airflow_parallelism:
        raise ValueError(f"AIRFLOW_BATCH_SLOTS={s.airflow_batch_slots} must be between 1 and "
                         f"AIRFLOW_PARALLELISM-1={s.airflow_parallelism - 1}: the hot path needs a slot of its own")
    return [
        PoolSpec(HOT_POOL, s.airflow_parallelism - s.airflow_batch_slots,
                 "hot path: extract, stage, forecast, alerts (what a fresh reading waits for)"),
        PoolSpec(BATCH_POOL, s.airflow_batch_slots,
                 "batch: dbt model tasks of master/agg/curated, training, validation, exports, trips, retention"),
    ]


def ensure_pools(settings: Settings | None = None) -> list[PoolSpec]:
    """Create or resize the pools in the metadata database Airflow's configuration points at."""
    from airflow.models.pool import Pool

    specs = pool_specs(settings)
    for spec in specs:
        Pool.create_or_update_pool(spec.name, spec.slots, spec.description, include_deferred=False)
    return specs


if __name__ == "__main__":
    for spec in ensure_pools():
        print(f"pool {spec.name}: {spec.slots} slots", file=sys.stderr)
