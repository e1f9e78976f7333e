"""Bulk history: generate ``[start, end)`` window by window and write it in chunks.

Resumable: per device, the newest ``_id`` already stored tells where an earlier run stopped;
windows before the day before that point are skipped, the rest is rewritten (duplicates of
identical content are no-ops), so a killed run continues without gaps or copies.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from generators import catalog
from generators.common import SECONDS_PER_DAY, epoch_seconds, to_utc
from generators.devices import Fleet, device_documents, user_documents
from generators.writer import MongoWriter, WriteStats

log = logging.getLogger(__name__)


def backfill(writer: MongoWriter, fleet: Fleet, start: datetime, end: datetime, bad_rate: float = 0.0,
             collections: tuple[str, ...] = catalog.MEASUREMENTS, resume: bool = True,
             progress: bool = True) -> WriteStats:
    """Write the registry and every measurement document with key time at or after ``start`` that
    its device has sent by ``end`` (a reading at its time, a bucket when it closes)."""
    from tqdm import tqdm

    start, end = to_utc(start), to_utc(end)
    stats = WriteStats()
    stats.add(writer.write("users", user_documents(fleet)))
    stats.add(writer.write("devices", device_documents(fleet)))
    lo, hi = epoch_seconds(start), epoch_seconds(end)

    plan = [w for name in collections for w in catalog.windows(fleet, name, start, end, bad_rate)]
    resume_from = _resume_points(writer, plan) if resume else {}
    pending: dict[str, list[dict]] = {}
    skipped = 0
    with tqdm(total=len(plan), unit="window", desc="backfill", disable=not progress) as bar:
        for window in plan:
            bar.update(1)
            cutoff = resume_from.get((window.collection, window.device_id))
            if cutoff is not None and (window.day + 2) * SECONDS_PER_DAY <= cutoff:
                skipped += 1  # entirely before the resume point (even for +14:00 local days)
                continue
            floor = max(lo, cutoff or lo)
            # only what devices have sent by ``end``: a bucket goes out when it closes
            last_key = hi - catalog.SEND_DELAY_S[window.collection]
            docs = [d for d in window.make() if floor <= catalog.key_epoch(d) < last_key]
            batch = pending.setdefault(window.collection, [])
            batch.extend(docs)
            if len(batch) >= writer.chunk_size:
                stats.add(writer.write(window.collection, batch))
                pending[window.collection] = []
                bar.set_postfix(docs=stats.written, refresh=False)
    for name, batch in pending.items():
        if batch:
            stats.add(writer.write(name, batch))
    log.info("backfill %s..%s: %d inserted, %d already present, %d rejected, %d windows skipped (resume)",
             start.isoformat(), end.isoformat(), stats.inserted, stats.already_present, stats.rejected, skipped)
    return stats


def _resume_points(writer: MongoWriter, plan: list[catalog.Window]) -> dict[tuple[str, str], int]:
    """Per (collection, device): rewrite from the start of the day before the newest stored key."""
    points = {}
    for collection, device in {(w.collection, w.device_id) for w in plan}:
        latest = writer.latest_key_epoch(collection, catalog.ID_PREFIX[collection], device)
        if latest is not None:
            points[(collection, device)] = (latest // SECONDS_PER_DAY - 1) * SECONDS_PER_DAY
    return points


def backfill_days(writer: MongoWriter, fleet: Fleet, days: int, now: datetime, **kwargs) -> WriteStats:
    """``days`` whole UTC days before today plus today up to ``now``."""
    now = to_utc(now)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    return backfill(writer, fleet, start, now, **kwargs)
