"""Bulk history: generate ``[start, end)`` window by window and write it in chunks.

Resumable: per device, the newest ``_id`` already stored tells where an earlier run stopped;
windows before the day before that point are skipped, the rest is rewritten (duplicates of
identical content are no-ops), so a killed run continues without gaps or copies.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from generators import catalog
from generators.bad_data import DEVICE_FIELD
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
    skipped = 0

    def batches() -> Iterator[tuple[str, list[dict]]]:
        """Chunk-sized batches per collection, in plan order (runs in the producer thread)."""
        nonlocal skipped
        pending: dict[str, list[dict]] = {}
        for window in plan:
            cutoff = resume_from.get((window.collection, window.device_id))
            if cutoff is not None and (window.day + 2) * SECONDS_PER_DAY <= cutoff:
                skipped += 1  # entirely before the resume point (even for +14:00 local days)
                yield window.collection, []
                continue
            floor = max(lo, cutoff or lo)
            # only what devices have sent by ``end``: a bucket goes out when it closes
            last_key = hi - catalog.SEND_DELAY_S[window.collection]
            batch = pending.setdefault(window.collection, [])
            batch.extend(d for d in window.make() if floor <= catalog.key_epoch(d) < last_key)
            full = len(batch) // writer.chunk_size * writer.chunk_size
            if full:  # whole chunks go now, the rest waits for the next window of the collection
                yield window.collection, batch[:full]
                pending[window.collection] = batch[full:]
            else:
                yield window.collection, []  # progress only
        for name, batch in pending.items():
            if batch:
                yield name, batch

    with tqdm(total=len(plan), unit="window", desc="backfill", disable=not progress) as bar:
        # generation (numpy, a producer thread) overlaps with the database round trips
        for collection, batch in _prefetch(batches(), depth=4):
            if batch:
                stats.add(writer.write(collection, batch))
                bar.set_postfix(docs=stats.written, refresh=False)
            if bar.n < bar.total:
                bar.update(1)
    log.info("backfill %s..%s: %d inserted, %d already present, %d rejected, %d windows skipped (resume)",
             start.isoformat(), end.isoformat(), stats.inserted, stats.already_present, stats.rejected, skipped)
    return stats


def _prefetch(items: Iterator, depth: int) -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead; errors re-raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)

    thread = threading.Thread(target=produce, name="backfill-generate", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _resume_points(writer: MongoWriter, plan: list[catalog.Window]) -> dict[tuple[str, str], int]:
    """Per (collection, device): rewrite from the start of the day before the newest stored key
    (an interrupted unordered chunk may have left holes just before it)."""
    points = {}
    for collection in {w.collection for w in plan}:
        for device, latest in writer.latest_key_epochs(collection, DEVICE_FIELD[collection]).items():
            points[(collection, device)] = (latest // SECONDS_PER_DAY - 1) * SECONDS_PER_DAY
    return points


def backfill_days(writer: MongoWriter, fleet: Fleet, days: int, now: datetime, **kwargs) -> WriteStats:
    """``days`` whole UTC days before today plus today up to ``now``."""
    now = to_utc(now)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    return backfill(writer, fleet, start, now, **kwargs)
