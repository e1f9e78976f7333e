"""Change capture from MongoDB: what changed in a collection since the last committed load.

Capture does not depend on the writer's clock or cooperation (DESIGN §3). Per collection:

* **Change stream.** With a committed resume token, the collection's change stream is read from
  that token: every insert, update, replace and delete the server committed since, in commit
  order, each insert and update with the document as it is now (``fullDocument: updateLookup``).
  A document that became visible late, was written by a writer whose clock is wrong, or was
  changed by ``update_one`` without touching ``_ingested_at`` is captured all the same. The
  events of one run are bounded (:data:`MAX_EVENTS`, :data:`MAX_BYTES`); the rest is read by the
  next run, which starts at the token after the last event taken.
* **Snapshot.** Without a token (first run, or the server no longer holds the token's history),
  a stream is opened first, its token kept, and the whole collection is read; the changes made
  during the read are then replayed from that token by the next run. Merging on ``_id`` makes
  the replay harmless.

A document's capture time (raw ``_ingested_at``) is the wall time at which the server committed
its latest change (the event's ``wallTime``), or the snapshot's start for snapshot reads.

The token is only committed to the warehouse (:mod:`dlt_pipelines.progress`) after the rows it
covers are loaded, so a crash anywhere re-reads, never skips.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bson import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.errors import OperationFailure

from dlt_pipelines.source_ids import encode_id

log = logging.getLogger(__name__)

# One run takes at most this many change events / bytes of documents per collection (the
# documents of a run are held in memory to keep only the newest version of each); the
# continuous extract drains a larger backlog over several runs.
MAX_EVENTS = 100_000
MAX_BYTES = 128 << 20
# Change events per getMore and documents per batch handed to the reader.
EVENT_BATCH = 5_000
DOCUMENTS_PER_BATCH = 5_000
# How long a getMore waits for new events before the stream counts as caught up: an idle run asks
# every collection once, and each wait is spent in full
AWAIT_MS = 1

# Server answers that say a token cannot be resumed: its history is gone (ChangeStreamHistoryLost,
# 286), it is malformed or from another deployment (FailedToParse 9, InvalidResumeToken 260,
# BadValue 2), or the stream cannot go on (ChangeStreamFatalError 280). A snapshot follows.
RESUME_FAILURES = frozenset({2, 9, 260, 280, 286})
# Events after which the stream of the collection is over (the collection was dropped or renamed).
ENDING_EVENTS = frozenset({"drop", "rename", "dropDatabase", "invalidate"})

RAW_OPTIONS = CodecOptions(document_class=RawBSONDocument, tz_aware=True, tzinfo=UTC)


@dataclass
class Changes:
    """What one read of a collection's change stream gave."""

    token: dict | None  # where the next read starts (None: the stream ended; snapshot next)
    documents: list[bytes] = field(default_factory=list)  # newest version of each changed document
    captured_at: dict[str, datetime] = field(default_factory=dict)  # encoded _id -> commit wall time
    deletes: dict[str, datetime] = field(default_factory=dict)  # encoded _id -> commit wall time
    events: int = 0
    ended: str | None = None  # the event that ended the stream (drop, rename, invalidate)
    more: bool = False  # stopped at a limit: more changes are waiting

    def batches(self, size: int = DOCUMENTS_PER_BATCH) -> Iterator[bytes]:
        """The documents as raw BSON batches, the shape ``find_raw_batches`` gives."""
        for lo in range(0, len(self.documents), size):
            yield b"".join(self.documents[lo:lo + size])


class ResumeFailed(Exception):
    """The server cannot resume the collection's stream from the committed token."""


def utc_now_ms() -> datetime:
    """Now, to the millisecond (what BSON datetimes hold)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _raw_collection(db, collection: str):
    return db.get_collection(collection, codec_options=RAW_OPTIONS)


def open_stream(db, collection: str, token: dict | None):
    """The collection's change stream from ``token`` (None: from now). Raises :class:`ResumeFailed`
    when the server cannot resume from the token."""
    kwargs = {"full_document": "updateLookup", "batch_size": EVENT_BATCH, "max_await_time_ms": AWAIT_MS}
    if token is not None:
        kwargs["resume_after"] = token
    try:
        return _raw_collection(db, collection).watch(**kwargs)
    except OperationFailure as exc:
        if token is not None and exc.code in RESUME_FAILURES:
            raise ResumeFailed(f"{collection}: {exc.details.get('errmsg', exc) if exc.details else exc}") from exc
        raise


def current_token(db, collection: str) -> dict:
    """A token for "now": changes committed after this call are read from it."""
    with open_stream(db, collection, None) as stream:
        token = stream.resume_token
    if token is None:  # a server that gives no token before the first event
        raise RuntimeError(f"the change stream of {collection} gave no resume token")
    return dict(token)


def _wall_time(event: RawBSONDocument) -> datetime:
    wall = event.get("wallTime")
    if isinstance(wall, datetime):
        return wall
    return event["clusterTime"].as_datetime()  # servers before MongoDB 6.0 send no wallTime


def read_changes(stream, first_event: RawBSONDocument | None = None, max_events: int = MAX_EVENTS,
                 max_bytes: int = MAX_BYTES) -> Changes:
    """Read ``stream`` until it is caught up or a limit is reached; keep the newest state of each
    document (its last full version, or its deletion)."""
    latest: dict[str, tuple[bytes | None, datetime]] = {}
    size = 0
    events = 0
    ended = None
    more = False
    event = first_event if first_event is not None else stream.try_next()
    while event is not None:
        events += 1
        operation = event["operationType"]
        if operation in ENDING_EVENTS:
            ended = operation
            break
        key = event.get("documentKey")
        if key is not None and "_id" in key:
            source_id = encode_id(key["_id"])
            wall = _wall_time(event)
            if operation == "delete":
                latest[source_id] = (None, wall)
            else:
                document = event.get("fullDocument")
                if document is not None:  # None: deleted since; its delete event follows
                    raw = document.raw
                    size += len(raw)
                    latest[source_id] = (raw, wall)
        if events >= max_events or size >= max_bytes:
            more = True
            break
        event = stream.try_next()
    token = None if ended else dict(stream.resume_token)
    changes = Changes(token=token, events=events, ended=ended, more=more)
    for source_id, (raw, wall) in latest.items():
        if raw is None:
            changes.deletes[source_id] = wall
        else:
            changes.documents.append(raw)
            changes.captured_at[source_id] = wall
    return changes


def peek(stream) -> RawBSONDocument | None:
    """The stream's next event, if one is waiting (a cheap "anything new?" check)."""
    return stream.try_next()
