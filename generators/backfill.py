"""Bulk history: generate ``[start, end)`` window by window and write it in chunks.

Resumable: after each chunk the run records, per collection and device, the last window (device
day) whose documents are all stored (``MongoWriter.save_backfill_progress``). A run of the same
backfill (same start, seed and bad-data rate) skips those windows and rewrites the rest
(duplicates of identical content are no-ops), so a killed run continues without gaps or copies.
What is already in a collection is not taken as progress: the live stream writes the newest
readings of every device, and a backfill started beside it must still write the history before them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from generators import catalog
from generators.common import epoch_seconds, to_utc
from generators.devices import Fleet, device_documents, user_documents
from generators.writer import MongoWriter, WriteStats

log = logging.getLogger(__name__)


def backfill(writer: MongoWriter, fleet: Fleet, start: datetime, end: datetime, bad_rate: float = 0.0,
             collections: tuple[str, ...] = catalog.MEASUREMENTS, resume: bool = True,
             progress: bool = True, record_progress: bool = True) -> WriteStats:
    """Write the registry and every measurement document with key time at or after ``start`` that
    its device has sent by ``end`` (a reading at its time, a bucket when it closes).
    ``record_progress=False``: leave no progress records (a one-off range such as a catch-up)."""
    from tqdm import tqdm

    start, end = to_utc(start), to_utc(end)
    stats = WriteStats()
    stats.add(writer.register("users", user_documents(fleet)))
    stats.add(writer.register("devices", device_documents(fleet)))
    lo, hi = epoch_seconds(start), epoch_seconds(end)

    plan = [w for name in collections for w in catalog.windows(fleet, name, start, end, bad_rate)]
    run = backfill_run_id(fleet, start, bad_rate)
    done_day = writer.backfill_progress(run) if resume else {}
    skipped = 0

    def batches() -> Iterator[tuple[str, list[dict], list[tuple[str, int]]]]:
        """(collection, chunk-sized batch, the (device, day) windows complete once it is stored), per
        collection in plan order (runs in the producer thread)."""
        nonlocal skipped
        pending: dict[str, list[dict]] = {}
        # per collection: (index in pending after the window's last document, device, day, complete)
        waiting: dict[str, list[tuple[int, str, int, bool]]] = {}
        for window in plan:
            if window.day <= done_day.get((window.collection, window.device_id), -1):
                skipped += 1  # stored whole by an earlier run of this backfill
                yield window.collection, [], []
                continue
            # only what devices have sent by ``end``: a bucket goes out when it closes
            last_key = hi - catalog.SEND_DELAY_S[window.collection]
            made = [(catalog.key_epoch(d), d) for d in window.make()]
            batch = pending.setdefault(window.collection, [])
            batch.extend(d for key, d in made if lo <= key < last_key)
            # a window cut by ``end`` gets more documents in a later run: it is never recorded as done
            complete = all(key < last_key for key, _ in made)
            waits = waiting.setdefault(window.collection, [])
            waits.append((len(batch), window.device_id, window.day, complete))
            full = len(batch) // writer.chunk_size * writer.chunk_size
            if full:  # whole chunks go now, the rest waits for the next window of the collection
                stored = [(device, day) for end_index, device, day, ok in waits if end_index <= full and ok]
                waiting[window.collection] = [(e - full, dev, day, ok) for e, dev, day, ok in waits if e > full]
                yield window.collection, batch[:full], stored
                pending[window.collection] = batch[full:]
            else:
                yield window.collection, [], []  # progress only
        for name, batch in pending.items():
            yield name, batch, [(device, day) for _, device, day, ok in waiting.get(name, []) if ok]

    with tqdm(total=len(plan), unit="window", desc="backfill", disable=not progress) as bar:
        # generation (numpy, a producer thread) overlaps with the database round trips
        for collection, batch, stored in _prefetch(batches(), depth=4):
            if batch:
                stats.add(writer.write(collection, batch))
                bar.set_postfix(docs=stats.written, refresh=False)
            if stored and record_progress:
                writer.save_backfill_progress(run, collection, stored)
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


def backfill_run_id(fleet: Fleet, start: datetime, bad_rate: float) -> str:
    """What makes two backfills write the same documents: the fleet's seed, the start, the bad-data rate."""
    return f"seed={fleet.seed}|start={epoch_seconds(to_utc(start))}|bad_rate={bad_rate!r}"


def catch_up(writer: MongoWriter, fleet: Fleet, now: datetime, max_gap: timedelta, bad_rate: float = 0.0,
             progress: bool = True) -> WriteStats | None:
    """Before a stream starts: write what the devices sent while no stream ran (the stack was
    down), at most ``max_gap`` back, so the readings go on without a hole. Starts at the newest
    stored measurement's key time less the longest send delay (a bucket open when the stream
    stopped was never sent); what is already there is a no-op. None when nothing was ever written."""
    now = to_utc(now)
    # any of the last chunk: an estimate that can be early (more no-op rewrites), never late
    keys = [k for c in catalog.MEASUREMENTS for i in writer.last_written_ids(c)
            if (k := _key_of(i)) is not None and k < epoch_seconds(now)]
    if not keys:
        return None
    newest = max(keys)
    start_epoch = max(newest - max(catalog.SEND_DELAY_S.values()), epoch_seconds(now - max_gap))
    if start_epoch >= epoch_seconds(now):
        return None
    start = catalog.epoch_to_datetime(start_epoch)
    # through the second of ``now``: a stream started at ``now`` sends what is due after it
    end = catalog.epoch_to_datetime(epoch_seconds(now) + 1)
    log.info("catching up %s..%s (newest stored reading %s)", start.isoformat(), end.isoformat(),
             catalog.epoch_to_datetime(newest).isoformat())
    return backfill(writer, fleet, start, end, bad_rate=bad_rate, resume=False, progress=progress,
                    record_progress=False)


def _key_of(doc_id) -> int | None:
    """The key time in a generated ``_id``; None for any other (e.g. a bad document's)."""
    try:
        return catalog.key_epoch({"_id": doc_id})
    except (AttributeError, IndexError, ValueError):
        return None


def backfill_days(writer: MongoWriter, fleet: Fleet, days: int, now: datetime, **kwargs) -> WriteStats:
    """``days`` whole UTC days before today plus today up to ``now``."""
    now = to_utc(now)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    return backfill(writer, fleet, start, now, **kwargs)
