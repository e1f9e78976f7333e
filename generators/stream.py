"""Real-time simulation: devices send what they measured as simulated time passes.

Simulated time runs ``speedup`` times faster than the wall clock from ``sim_start``. Each tick
the documents whose send time (reading time; bucket end for bucketed wearables) has passed are
appended to a buffer, and the buffer is flushed. When MongoDB is unreachable the buffer keeps
growing and the flush is retried with exponential back-off; deterministic ``_id``s make the
retried writes exactly-once (a chunk that reached the server before the connection broke is
recognised as already present).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo.errors import ConnectionFailure, OperationFailure

from generators import catalog
from generators.common import SECONDS_PER_DAY, epoch_seconds, to_utc
from generators.devices import Fleet, device_documents, user_documents
from generators.writer import REGISTRY_COLLECTIONS, MongoWriter, WriteStats

log = logging.getLogger(__name__)


@dataclass
class StreamState:
    stats: WriteStats = field(default_factory=WriteStats)
    buffered: int = 0
    failures: int = 0  # failed flush attempts in total
    flushes: int = 0
    sim_now: datetime | None = None
    idle_logged_at: float | None = None  # monotonic time of the last "nothing to write" line
    last_flush_ok: bool = True


# an idle stream (nothing due: few devices, or between their sends) says so at most this often,
# not once a second
IDLE_LOG_SECONDS = 60.0


class _WindowCache:
    """Documents of the windows around the simulated present, sorted by send time."""

    def __init__(self, fleet: Fleet, bad_rate: float):
        self.fleet, self.bad_rate = fleet, bad_rate
        self._windows: dict[tuple[str, str, int], tuple[list[int], list[dict]]] = {}

    def due(self, collection: str, lo: int, hi: int) -> list[dict]:
        """Documents of ``collection`` with send time in ``(lo, hi]`` (epoch seconds)."""
        delay = catalog.SEND_DELAY_S[collection]
        start = catalog.epoch_to_datetime(lo - delay + 1)
        end = catalog.epoch_to_datetime(hi - delay + 1)
        out = []
        for window in catalog.windows(self.fleet, collection, start, end, self.bad_rate):
            key = (collection, window.device_id, window.day)
            if key not in self._windows:
                docs = sorted(window.make(), key=catalog.key_epoch)  # stable: a duplicate stays after its original
                self._windows[key] = ([catalog.key_epoch(d) + delay for d in docs], docs)
            send_times, docs = self._windows[key]
            out.extend(docs[bisect.bisect_right(send_times, lo):bisect.bisect_right(send_times, hi)])
        return out

    def forget_before(self, epoch: int) -> None:
        oldest_day = epoch // SECONDS_PER_DAY - 2
        for key in [k for k in self._windows if k[2] < oldest_day]:
            del self._windows[key]


def stream(writer: MongoWriter, fleet: Fleet, sim_start: datetime, speedup: float = 1.0,
           bad_rate: float = 0.0, sim_end: datetime | None = None, duration_s: float | None = None,
           stop: threading.Event | None = None, tick_s: float = 1.0, max_backoff_s: float = 30.0,
           drain_timeout_s: float = 600.0, collections: tuple[str, ...] = catalog.MEASUREMENTS) -> StreamState:
    """Send documents in (simulated) real time until ``sim_end``, ``duration_s`` or ``stop``.

    At the end the buffer is drained (retrying up to ``drain_timeout_s``), so every document
    due by then is delivered exactly once.
    """
    stop = stop or threading.Event()
    sim_start = to_utc(sim_start)
    cache = _WindowCache(fleet, bad_rate)
    state = StreamState()
    buffer: dict[str, list[dict]] = {"users": user_documents(fleet), "devices": device_documents(fleet)}
    wall_start = time.monotonic()
    last_sent = epoch_seconds(sim_start)
    backoff, next_attempt = 0.0, 0.0
    log.info("streaming %d users, %d sensors from %s at %gx", len(fleet.users), len(fleet.sensors),
             sim_start.isoformat(), speedup)
    while True:
        elapsed = time.monotonic() - wall_start
        sim_now = sim_start + timedelta(seconds=elapsed * speedup)
        finished = stop.is_set() or (duration_s is not None and elapsed >= duration_s)
        if sim_end is not None and sim_now >= sim_end:
            sim_now, finished = to_utc(sim_end), True
        now_epoch = epoch_seconds(sim_now)
        if now_epoch > last_sent:
            for name in collections:
                due = cache.due(name, last_sent, now_epoch)
                if due:
                    buffer.setdefault(name, []).extend(due)
            last_sent = now_epoch
            cache.forget_before(now_epoch)
        state.sim_now = sim_now
        if time.monotonic() >= next_attempt:
            if _flush(writer, buffer, state, sim_now):
                backoff = 0.0
            else:
                backoff = min(max_backoff_s, max(0.5, backoff * 2))
                next_attempt = time.monotonic() + backoff
        if finished:
            break
        stop.wait(tick_s)
    _drain(writer, buffer, state, drain_timeout_s, max_backoff_s)
    return state


def _flush(writer: MongoWriter, buffer: dict[str, list[dict]], state: StreamState, sim_now: datetime) -> bool:
    """Write what is buffered; False (buffer kept) when the server cannot be reached."""
    wrote = WriteStats()
    try:
        for name in list(buffer):
            docs = buffer[name]
            while docs:  # chunk by chunk, dropping each from the buffer once it is stored
                chunk = docs[:writer.chunk_size]
                wrote.add(writer.register(name, chunk) if name in REGISTRY_COLLECTIONS else writer.write(name, chunk))
                del docs[:len(chunk)]
        ok = True
    except (ConnectionFailure, OperationFailure) as exc:
        # OperationFailure covers a server shutting down mid-request ("interrupted at shutdown")
        state.failures += 1
        ok = False
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    state.stats.add(wrote)
    state.flushes += 1
    state.buffered = sum(len(v) for v in buffer.values())
    recovered, state.last_flush_ok = ok and not state.last_flush_ok, ok
    now = time.monotonic()
    if ok and not wrote.written and not recovered:
        if state.idle_logged_at is None or now - state.idle_logged_at >= IDLE_LOG_SECONDS:
            log.info("sim %s idle: nothing due, buffered %d, retries %d", sim_now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     state.buffered, state.failures)
            state.idle_logged_at = now
    elif ok:
        log.info("sim %s wrote %d (inserted %d, already present %d, rejected %d) buffered %d retries %d",
                 sim_now.strftime("%Y-%m-%dT%H:%M:%SZ"), wrote.written, wrote.inserted, wrote.already_present,
                 wrote.rejected, state.buffered, state.failures)
        state.idle_logged_at = None
    else:
        log.warning("sim %s MongoDB unreachable (%s): wrote %d, buffered %d, retries %d",
                    sim_now.strftime("%Y-%m-%dT%H:%M:%SZ"), reason, wrote.written, state.buffered, state.failures)
    return ok


def _drain(writer: MongoWriter, buffer: dict[str, list[dict]], state: StreamState, timeout_s: float,
           max_backoff_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    backoff = 0.5
    while any(buffer.values()):
        if _flush(writer, buffer, state, state.sim_now):
            break
        if time.monotonic() >= deadline:
            log.error("gave up after %.0fs with %d documents undelivered", timeout_s, state.buffered)
            break
        time.sleep(backoff)
        backoff = min(max_backoff_s, backoff * 2)
