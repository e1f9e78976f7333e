"""The lake's S3 objects as DuckDB reads them: few requests, many at a time, in bounded memory.

An object store charges a wait of some 10-50 ms per request. Read through a plain filesystem wrapper,
DuckDB pays it one request after the other, several times per file: it asks whether the file exists,
its size and its modification time, then reads the footer, then the data. Here:

- **Metadata from the listing**: the day folders are listed (one request per folder, listed many at a
  time); the sizes and times of the listing answer DuckDB's ``exists``/``info``/``size``/``modified``.
- **Objects fetched ahead, many at a time**: before a query, the job names the files it will read
  (:meth:`S3Objects.reading`); their objects are fetched by ``concurrency`` threads, one GET each
  (a file's last 64 KiB when only its footer is needed and it is larger than 1 MiB), and DuckDB's reads
  are served from memory. A file not named ahead is fetched when DuckDB opens it.
- **Bounded memory**: objects fetched ahead never take the held bytes over ``budget_bytes`` (fetching
  ahead waits for room); only an object DuckDB waits for may go over it, by itself: DuckDB reads one
  object at a time per reading thread (one per slice, see trips.summary), so the bytes held never exceed
  the budget plus the object each reading thread is on. An object is *done* once its reading thread
  has opened another one, or its query ends; done objects are released when room is needed (least
  recently used first), so an object read by several queries of a day is usually fetched once. To make
  room for an object DuckDB waits for, objects fetched ahead and not opened yet are released too (those
  fetched for later queries first; their plans fetch them again when there is room), and the next
  query's objects displace those fetched for queries after it. An object larger than a quarter of the
  budget is never held whole: DuckDB's reads of it become ranged GETs.

Objects are fetched with botocore when it is installed (one GET per object: the listing gave its size;
its client is built on a pool thread while the folders are listed) and otherwise through pyarrow's S3
filesystem (the lake's), which sends a HEAD before each GET. Credentials and region come from the
standard AWS variables and files in both.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fsspec import AbstractFileSystem

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow.fs as pafs

log = logging.getLogger(__name__)

TAIL_BYTES = 64 * 1024          # a footer read fetches this much of a larger file's end
WHOLE_BELOW = 1024 * 1024       # files up to this size are fetched whole even when only the footer is asked


@dataclass
class _Listed:
    size: int
    mtime: datetime


@dataclass(eq=False)
class _Entry:
    """An object (or its tail) held in memory, or on its way."""
    start: int                      # offset of data in the object (0: whole, else a tail)
    length: int
    ready: threading.Event = field(default_factory=threading.Event)
    data: bytes | None = None
    error: BaseException | None = None
    done: bool = False              # the query that asked for it has moved past it: may be released
    opened: bool = False            # DuckDB has opened it (else: fetched ahead, not read yet)


class _Plan:
    """The files one query reads, in the order DuckDB reads them (one thread per connection)."""

    def __init__(self, paths: list[str], footers_only: bool, rank: int):
        self.paths, self.footers_only, self.rank = paths, footers_only, rank
        self.cursor = 0   # the file DuckDB read last: the ones before it are done
        self.next = 0     # the next file to fetch


class S3Objects(AbstractFileSystem):
    """fsspec filesystem (protocol ``s3``) registered with DuckDB for an S3 lake (see the module doc)."""

    protocol = "s3"
    cachable = False  # fsspec would otherwise share one instance between lakes with equal arguments

    def __init__(self, fs: pafs.S3FileSystem, concurrency: int = 32, budget_bytes: int = 256 << 20,
                 client: Callable[[int], Any] | None = None):
        """``client``: builds a botocore S3 client for ``concurrency`` connections (see botocore_client), or
        returns None; without it (or when it returns None) objects are fetched through ``fs``."""
        super().__init__()
        self.concurrency, self.budget = max(1, concurrency), max(1, budget_bytes)
        self._fs = fs
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="s3-objects")
        self._lock = threading.Condition()
        self._listed: dict[str, _Listed] = {}                     # "bucket/key" -> size, mtime
        self._entries: OrderedDict[str, _Entry] = OrderedDict()   # least recently used first
        self._held = 0                                            # bytes of the entries (fetched or on the way)
        self._plans: deque[_Plan] = deque()                       # active, served in turn
        self._plan_of: dict[str, tuple[_Plan, int]] = {}
        self._read_whole: dict[str, int] = {}                     # path -> active plans reading its data
        self._demand: deque[tuple[str, _Entry]] = deque()         # opened by DuckDB, not fetched: first
        self._running = 0                                         # fetches on the threads
        self._current: dict[int, _Entry] = {}                     # reading thread -> the object it is on
        self.stats = {"gets": 0, "bytes": 0, "lists": 0, "heads": 0, "ranged_reads": 0}
        # built on a pool thread while the first folders are listed (botocore's import and client take
        # about 0.3 s); every GET waits for it
        self._client = self._pool.submit(client, self.concurrency) if client is not None else None

    # -- listing ------------------------------------------------------------------------------------
    def list_folders(self, folders: list[str]) -> list[list[str] | None]:
        """The objects directly under each folder ("bucket/prefix"), as "bucket/key" paths sorted, or None
        for a folder without any object; the folders are listed concurrently."""
        return list(self._pool.map(self._list_folder, folders))

    def _list_folder(self, folder: str) -> list[str] | None:
        import pyarrow.fs as pafs

        infos = self._fs.get_file_info(pafs.FileSelector(folder.strip("/"), allow_not_found=True))
        self._count("lists")
        if not infos:
            return None
        found = []
        with self._lock:
            for info in infos:
                if info.type == pafs.FileType.File:
                    self._listed[info.path] = _Listed(info.size, info.mtime)
                    found.append(info.path)
        return sorted(found)

    def _meta(self, path: str) -> _Listed:
        import pyarrow.fs as pafs

        path = self._strip_protocol(path)
        with self._lock:
            known = self._listed.get(path)
        if known:
            return known
        info = self._fs.get_file_info(path)
        self._count("heads")
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(path)
        listed = _Listed(info.size, info.mtime)
        with self._lock:
            self._listed[path] = listed
        return listed

    # -- the fsspec calls DuckDB makes ----------------------------------------------------------------
    def glob(self, path, **kwargs):
        path = self._strip_protocol(path)
        return [path] if self.exists(path) else []

    def exists(self, path, **kwargs) -> bool:
        try:
            self._meta(path)
            return True
        except FileNotFoundError:
            return False

    def info(self, path, **kwargs) -> dict:
        listed = self._meta(path)
        return {"name": self._strip_protocol(path), "size": listed.size, "type": "file", "mtime": listed.mtime}

    def size(self, path) -> int:
        return self._meta(path).size

    def modified(self, path) -> datetime:
        return self._meta(path).mtime

    def ls(self, path, detail=True, **kwargs):
        raise NotImplementedError("S3Objects lists day folders only (list_folders)")

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        if "r" not in mode:
            raise NotImplementedError("S3Objects only reads")
        path = self._strip_protocol(path)
        return _ObjectFile(self, path, self._meta(path).size)

    # -- fetching ahead -----------------------------------------------------------------------------------
    @contextmanager
    def reading(self, paths: list[str], footers_only: bool = False, rank: int = 0):
        """Fetch the objects of ``paths`` (reader paths, s3://...) ahead for the query run inside the block.
        Plans of a lower ``rank`` are served first (0: a query about to run; higher: fetching ahead)."""
        plan = _Plan([self._strip_protocol(p) for p in paths], footers_only, rank)
        with self._lock:
            for index, path in enumerate(plan.paths):
                self._plan_of[path] = (plan, index)
                if not footers_only:
                    self._read_whole[path] = self._read_whole.get(path, 0) + 1
            self._plans.append(plan)
            self._dispatch()
        try:
            yield
        finally:
            with self._lock:
                for path in plan.paths:
                    if not footers_only:
                        self._read_whole[path] -= 1
                        if not self._read_whole[path]:
                            del self._read_whole[path]
                    if self._plan_of.get(path, (None,))[0] is plan:
                        del self._plan_of[path]
                        entry = self._entries.get(path)
                        if entry is not None:
                            entry.done = True
                self._plans.remove(plan)
                # the query run inside the block has ended: the object its thread read last is done
                if (current := self._current.pop(threading.get_ident(), None)) is not None:
                    current.done = True
                self._dispatch()

    def _wanted(self, path: str, footers_only: bool) -> tuple[int, int] | None:
        """(start, length) to fetch of an object, or None: held already, or too large to hold whole."""
        size = self._listed[path].size if path in self._listed else None
        if size is None:
            return None
        if footers_only and size > WHOLE_BELOW and (size > self.budget // 4 or path not in self._read_whole):
            # only the footer: unless a plan (the slice's, fetching ahead) reads the data too, which
            # would fetch the whole object a second time
            start, length = max(0, size - TAIL_BYTES), min(size, TAIL_BYTES)
        elif size > self.budget // 4:
            return None  # read by ranges when DuckDB asks
        else:
            start, length = 0, size
        entry = self._entries.get(path)
        if entry is not None and (entry.error is not None or entry.start <= start):
            return None   # held, on its way, or failed (after the client's retries: not asked again)
        return start, length

    def _dispatch(self) -> None:
        """Start fetches while threads are free (call with the lock held): first the objects DuckDB waits
        for, then the plans' next objects, one plan after the other (so that slices side by side are
        served alike), while the budget has room. At most ``concurrency`` fetches run, so an object
        DuckDB waits for never queues behind fetches ahead."""
        while self._running < self.concurrency:
            if self._demand:
                self._launch(*self._demand.popleft())
                continue
            plan = self._next_plan()
            if plan is None:
                return
            path = plan.paths[plan.next]
            wanted = self._wanted(path, plan.footers_only)
            if wanted is None:
                plan.next += 1
                continue
            if not self._make_room(wanted[1], plan.rank):
                return   # again when DuckDB moves on, or a query ends
            plan.next += 1
            self._launch(path, self._new_entry(path, *wanted))

    def _next_plan(self) -> _Plan | None:
        """The plan of the lowest rank with objects left to fetch; plans of one rank take turns."""
        pending = [plan for plan in self._plans if plan.next < len(plan.paths)]
        if not pending:
            return None
        rank = min(plan.rank for plan in pending)
        for _ in range(len(self._plans)):
            plan = self._plans[0]
            self._plans.rotate(-1)
            if plan.rank == rank and plan.next < len(plan.paths):
                return plan
        return None

    def _new_entry(self, path: str, start: int, length: int) -> _Entry:
        old = self._entries.pop(path, None)
        if old is not None:
            self._held -= old.length
        entry = _Entry(start, length)
        self._entries[path] = entry
        self._held += length
        return entry

    def _launch(self, path: str, entry: _Entry) -> None:
        self._running += 1
        self._pool.submit(self._fetch, path, entry)

    def _make_room(self, length: int, rank: int | None = None) -> bool:
        """Release objects until ``length`` more bytes fit in the budget; True when they fit. First the
        done objects (least recently used first), then objects fetched ahead that DuckDB has not opened
        yet: for a plan of ``rank``, those of plans served after it; for an object DuckDB waits for
        (``rank`` None), any (the latest plans' first, the last fetched first). A plan whose object is
        released fetches it again when there is room."""
        if self._held + length <= self.budget:
            return True
        for path, entry in list(self._entries.items()):
            # a file object still reading a released entry keeps its bytes (DuckDB drops its file
            # objects without closing them, so open handles cannot be counted)
            if entry.done and entry.ready.is_set():
                self._release(path, entry)
                if self._held + length <= self.budget:
                    return True
        ahead = []
        for recency, (path, entry) in enumerate(self._entries.items()):
            if entry.ready.is_set() and not entry.opened and entry.error is None:
                planned = self._plan_of.get(path)
                owner = planned[0].rank if planned else float("inf")
                if rank is None or owner > rank:
                    ahead.append((owner, recency, path, entry))
        for _, _, path, entry in sorted(ahead, key=lambda a: (a[0], a[1]), reverse=True):
            self._release(path, entry)
            if (planned := self._plan_of.get(path)) is not None:
                plan, index = planned
                if index >= plan.cursor:
                    plan.next = min(plan.next, index)
            if self._held + length <= self.budget:
                return True
        return self._held + length <= self.budget

    def _release(self, path: str, entry: _Entry) -> None:
        del self._entries[path]
        self._held -= entry.length

    def _fetch(self, path: str, entry: _Entry) -> None:
        try:
            data = self._get(path, entry.start, entry.length if entry.start else None)
            entry.data = data
        except BaseException as exc:  # noqa: BLE001 - handed to the reader that waits for it
            entry.error = exc
        with self._lock:
            self._running -= 1
            if entry.error is not None:   # kept (holding no bytes) so that every later read fails at once
                self._held -= entry.length
                entry.length, entry.done = 0, True
            entry.ready.set()
            self._dispatch()

    def probe(self, path: str) -> None:
        """Read an object's first byte (raises OSError, at once if fetching it failed already)."""
        path = self._strip_protocol(path)
        with self._lock:
            entry = self._entries.get(path)
        if entry is not None and entry.ready.is_set() and entry.error is not None:
            raise OSError(f"s3://{path}: {entry.error}") from entry.error
        self._get(path, 0, 1)

    def _get(self, path: str, start: int, length: int | None) -> bytes:
        """Bytes of an object: from ``start``, ``length`` of them (None: to its end)."""
        client = self._client.result() if self._client is not None else None
        if client is None:   # pyarrow: a HEAD (the object's size), then the GET
            with self._fs.open_input_file(path) as file:
                data = file.read_at(file.size() - start if length is None else length, start)
            self._count("gets", len(data))
            self._count("heads")
            return data
        if length == 0 or (start and length is None and start >= self._meta(path).size):
            return b""   # S3 answers a range outside the object (e.g. of an empty one) with an error
        bucket, _, key = path.partition("/")
        extra = {}
        if start or length is not None:
            extra["Range"] = f"bytes={start}-{'' if length is None else start + length - 1}"
        try:
            response = client.get_object(Bucket=bucket, Key=key, **extra)
            data = response["Body"].read()
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""    # a range starting at or past the end (an empty object's first byte)
            raise OSError(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - connection errors and the like: what pyarrow would raise
            raise OSError(str(exc)) from exc
        self._count("gets", len(data))
        return data

    def _count(self, what: str, nbytes: int = 0) -> None:
        with self._lock:
            self.stats[what] += 1
            if nbytes:
                self.stats["bytes"] += nbytes

    def _entry_for_reading(self, path: str) -> _Entry | None:
        """The entry DuckDB's open file reads from (started now if it was not fetched ahead), or None
        for an object too large to hold whole."""
        with self._lock:
            entry = self._entries.get(path)
            # A reading thread reads one object at a time (it may come back to one: a query over files
            # of several schemas reads every footer first): the object it opened before is done.
            previous = self._current.pop(threading.get_ident(), None)
            if previous is not None and previous is not entry:
                previous.done = True
            planned = self._plan_of.get(path)
            if planned:   # DuckDB reads a query's files in order: the earlier ones are done
                plan, index = planned
                for earlier in plan.paths[plan.cursor:index]:
                    if (e := self._entries.get(earlier)) is not None and not e.opened:
                        e.done = True
                plan.cursor = max(plan.cursor, index)
            if entry is None:
                wanted = self._wanted(path, footers_only=False)
                if wanted is None:
                    self._dispatch()
                    return None
                # after the objects this thread is done with: only they and objects fetched ahead
                # make room, so the budget is exceeded by this object at most
                self._make_room(wanted[1])
                entry = self._new_entry(path, *wanted)
                self._demand.append((path, entry))
            entry.opened, entry.done = True, False
            self._current[threading.get_ident()] = entry
            self._entries.move_to_end(path)
            self._dispatch()
        entry.ready.wait()
        if entry.error is not None:
            raise OSError(f"s3://{path}: {entry.error}") from entry.error
        return entry

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def botocore_client(endpoint: str | None, region: str) -> Callable[[int], Any]:
    """A builder of the botocore S3 client S3Objects fetches objects with (``endpoint``: an S3-compatible
    server, None for AWS), or of None when botocore is not installed (pyarrow then fetches them). Retries
    as pyarrow's client makes them (3 attempts); no checksum of whole objects computed on the way."""

    def build(connections: int):
        try:
            import botocore.session
            from botocore.config import Config
        except ImportError:
            log.info("botocore is not installed: S3 objects are fetched through pyarrow (a HEAD before each GET)")
            return None
        config = Config(max_pool_connections=connections, retries={"max_attempts": 3, "mode": "standard"},
                        response_checksum_validation="when_required",
                        # an S3-compatible server on a host of its own is addressed as pyarrow does
                        s3={"addressing_style": "path"} if endpoint else None)
        return botocore.session.get_session().create_client("s3", region_name=region, endpoint_url=endpoint,
                                                            config=config)

    return build


class _ObjectFile:
    """A read-only file over an object: served from its fetched bytes, else by ranged GETs."""

    def __init__(self, objects: S3Objects, path: str, size: int):
        self.objects, self.path, self.size = objects, path, size
        self.pos = 0
        self.closed = False
        self._entry: _Entry | None = None
        self._entry_asked = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else self.size + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, length: int = -1) -> bytes:
        if length is None or length < 0:
            length = self.size - self.pos
        length = max(0, min(length, self.size - self.pos))
        if length == 0:
            return b""
        if not self._entry_asked:
            self._entry_asked = True
            self._entry = self.objects._entry_for_reading(self.path)
        entry = self._entry
        if entry is not None and entry.start <= self.pos and self.pos + length <= entry.start + len(entry.data):
            offset = self.pos - entry.start
            # DuckDB reads a small file whole, in one read: hand over the object itself, no copy
            data = entry.data if offset == 0 and length == len(entry.data) else entry.data[offset:offset + length]
        else:   # outside what was fetched (the data of a file fetched for its footer, or a large file)
            self.objects._count("ranged_reads")
            data = self.objects._get(self.path, self.pos, length)
        self.pos += len(data)
        return data

    def close(self) -> None:
        self.closed = True
        self._entry = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
