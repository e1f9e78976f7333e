"""The dlt pipeline MongoDB -> warehouse ``raw`` (issue 4, DESIGN §3-4).

One dlt source over the collections. Per collection a reader resource (run in dlt's thread pool,
so the collections are read in parallel) streams the window ``[last end, now - settle)`` of
``_ingested_at`` into CSV files, one per raw table (good rows, child rows ``<coll>__metrics``,
quarantined documents), and yields them once at the end; three transformers hand them to dlt as
imported load files. dlt loads them with its csv loader file format (COPY) and merges on their
key (``_id``; ``(_parent_id, idx)``; ``(collection, source_id)``), so re-reading a window is harmless.

Incremental state: the end of the last window per collection, kept in dlt's source state, which
dlt stores in the destination in the same load package as the data (``_dlt_pipeline_state``), so
the cursor only moves when the data it covers is loaded, and a fresh worker resumes from it.
Windows are contiguous and half-open: every document is read in exactly one committed window.
The settle delay keeps the window end a little behind the clock, so a write whose
``_ingested_at`` was taken just before the window end but committed just after is not skipped.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dlt_pipelines import contract, tables
from dlt_pipelines.files import CsvTableWriter, TableFile
from dlt_pipelines.reader import Batch, ReadCounts, read_collection
from iot_core.connections import mongo_client, mongo_db, pg_connect, pg_conninfo
from iot_core.settings import get_settings

log = logging.getLogger(__name__)

PIPELINE_NAME = "iot_raw_extract"
DATASET = "raw"
STAGING_DATASET = "raw_staging"
SOURCE_NAME = "mongo_raw"
COLLECTIONS: tuple[str, ...] = contract.COLLECTIONS
# Seconds the window end stays behind the clock (see module docstring); env IOT_EXTRACT_SETTLE_SECONDS.
DEFAULT_SETTLE_SECONDS = 2.0


def settle_seconds() -> float:
    return float(os.environ.get("IOT_EXTRACT_SETTLE_SECONDS", DEFAULT_SETTLE_SECONDS))


def _configure_dlt() -> None:
    # ERROR: dlt warns on every run that the jsonb hints differ from the Arrow string columns (intended).
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    # We pass credentials explicitly; dlt's Airflow-Variables secrets lookup (on by default when Airflow is
    # installed) cost ~20 s per run here: one metadata-DB query per config key.
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    # Load files are written once and read once on the same disk: gzip cost ~4 s per million points.
    os.environ.setdefault("DATA_WRITER__DISABLE_COMPRESSION", "true")
    # dlt's anonymous usage telemetry is of no use here and needs the network.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def make_pipeline(progress: bool = False, pipelines_dir: str | None = None):
    _configure_dlt()
    import dlt

    settings = get_settings()
    info = pg_conninfo("loader")
    # credentials as fields, not a URL: dlt parses URLs with SQLAlchemy, a 0.3-3 s import per process
    destination = dlt.destinations.postgres(credentials={
        "database": info["dbname"], "username": info["user"], "password": info["password"],
        "host": info["host"], "port": info["port"]})
    kwargs: dict[str, Any] = {"progress": "tqdm"} if progress else {}
    return dlt.pipeline(pipeline_name=PIPELINE_NAME, pipelines_dir=pipelines_dir or str(settings.local_dir / "dlt"),
                        destination=destination, dataset_name=DATASET, **kwargs)


class BatchFiles:
    """The CSV files of one collection's read: one per raw table it feeds (parent, child, quarantine)."""

    def __init__(self, directory: Path, collection: str, load_id: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.collection = collection
        self.writers: dict[str, CsvTableWriter] = {}
        for part, schema in (("rows", tables.PARENT_SCHEMAS.get(collection)),
                             ("children", tables.CHILD_SCHEMAS.get(collection)),
                             ("quarantine", tables.QUARANTINE_SCHEMA)):
            if schema is not None:
                self.writers[part] = CsvTableWriter(directory / f"{collection}.{part}.csv", schema, load_id)

    def write(self, batch: Batch) -> None:
        for part, writer in self.writers.items():
            writer.write(getattr(batch, part))

    def close(self) -> Batch:
        """The finished files. Tables that got no rows get a header-only file, so that every raw table
        exists after the first run and the stage models can select from it at once."""
        files = {part: writer.close() for part, writer in self.writers.items()}
        return Batch(self.collection, files.get("rows"), files.get("children"), files.get("quarantine"))

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def _pick(part: str):
    import dlt

    def pick(batch: Batch):
        file: TableFile | None = getattr(batch, part)
        if file is not None:
            yield dlt.mark.with_file_import(file.path, "csv", file.rows, hints=file.hints())
    return pick


def raw_source(collections: Iterable[str], window_end: datetime, known_devices: frozenset[str] | None,
               counts: dict[str, ReadCounts], files_dir: Path, now: datetime | None = None):
    """The dlt source: a reader per collection plus transformers for rows, child rows and quarantine.

    Each reader writes its collection's window to CSV files under ``files_dir`` and yields them once,
    at the end; the transformers hand them to dlt as imported load files."""
    import dlt

    collections = tuple(collections)
    ctx = contract.Context(now=now or datetime.now(UTC), known_devices=known_devices)

    def reader(collection: str) -> Iterator[Any]:
        cursors = dlt.current.source_state().setdefault("window_end", {})
        start = cursors.get(collection)
        start_dt = datetime.fromisoformat(start) if start else None
        files = BatchFiles(files_dir, collection, dlt.current.load_package_state()["load_id"])
        try:
            if start_dt is None or start_dt < window_end:
                counts[collection] = collection_counts = ReadCounts()
                client = mongo_client()
                try:
                    for batch in read_collection(mongo_db(client), collection, start_dt, window_end, ctx,
                                                 collection_counts):
                        files.write(batch)
                finally:
                    client.close()
                log.info("read %s [%s, %s): %s", collection, start, window_end.isoformat(), collection_counts)
        except BaseException:
            files.abort()
            raise
        # Always yielded, even for an empty window: every raw table exists from the first run on, so
        # the stage models can select from raw.quarantine (and the rest) before any such row arrived.
        yield files.close()
        # Only reached when the whole window was read; committed with the load package.
        cursors[collection] = window_end.isoformat()

    @dlt.source(name=SOURCE_NAME, max_table_nesting=0, root_key=False)
    def source():
        resources = []
        for collection in collections:
            read = dlt.resource(reader(collection), name=f"read_{collection}", selected=False, parallelized=True)
            resources.append(read)
            if collection in tables.PARENT_SCHEMAS:
                resources.append(dlt.transformer(
                    _pick("rows"), data_from=read, name=collection, table_name=collection,
                    write_disposition="merge", primary_key=list(tables.PARENT_KEY),
                    columns=tables.column_hints(collection)))
            if collection in tables.CHILD_SCHEMAS:
                child = tables.child_table(collection)
                resources.append(dlt.transformer(
                    _pick("children"), data_from=read, name=child, table_name=child,
                    write_disposition="merge", primary_key=list(tables.CHILD_KEY),
                    columns=tables.column_hints(child)))
            resources.append(dlt.transformer(
                _pick("quarantine"), data_from=read, name=f"quarantine_{collection}",
                table_name=tables.QUARANTINE, write_disposition="merge", primary_key=list(tables.QUARANTINE_KEY),
                columns=tables.column_hints(tables.QUARANTINE)))
        return resources

    return source()


# ------------------------------------------------------------------ warehouse housekeeping
def ensure_staging_schema() -> None:
    """dlt merges through a staging schema. The loader may not create schemas (least privilege):
    warehouse/init creates it, owned by the loader, as it does ``raw``."""
    with pg_connect("loader", autocommit=True) as conn:
        if conn.execute("select 1 from pg_namespace where nspname = %s", (STAGING_DATASET,)).fetchone():
            return
    raise RuntimeError(f"schema {STAGING_DATASET!r} is missing from the warehouse: run the warehouse "
                       "init SQL (`make up` does; Docker: warehouse/init via docker/timescaledb/initdb.sh)")


def ensure_indexes(workers: int = 2) -> None:
    """A unique index on each table's merge key (so merges are index lookups, not scans) and an
    ``_ingested_at`` index for the stage models' incremental reads; idempotent.

    Only missing indexes are built (after the first load: all of them, on the loaded rows, which is
    cheaper than maintaining them during that load), ``workers`` at a time on their own connections."""
    from psycopg import sql

    with pg_connect("loader", autocommit=True) as conn:
        existing = {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = %s", (DATASET,))}
        indexes = {r[0] for r in conn.execute("select indexname from pg_indexes where schemaname = %s", (DATASET,))}
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for table, key in tables.table_keys().items():
        if table not in existing:
            continue
        if f"{table}_key_uq" not in indexes:
            todo.put(sql.SQL("create unique index if not exists {} on {}.{} ({})").format(
                sql.Identifier(f"{table}_key_uq"), sql.Identifier(DATASET), sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, key))))
        if table in tables.CURSOR_INDEXED and f"{table}_ingested_idx" not in indexes:
            # the stage models read raw incrementally by _ingested_at: without it every run scans raw
            todo.put(sql.SQL("create index if not exists {} on {}.{} (_ingested_at)").format(
                sql.Identifier(f"{table}_ingested_idx"), sql.Identifier(DATASET), sql.Identifier(table)))
    if todo.empty():
        return

    def build() -> None:
        with pg_connect("loader", autocommit=True) as conn:
            while True:
                try:
                    statement = todo.get_nowait()
                except queue.Empty:
                    return
                conn.execute(statement)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in [pool.submit(build) for _ in range(min(workers, todo.qsize()))]:
            done.result()


# A run's CSV files older than this belong to a killed run (a run takes seconds to minutes).
STALE_IMPORT_FILES_SECONDS = 6 * 3600


def import_files_dir(root: Path) -> Path:
    """A fresh directory for this run's CSV files; those of killed runs are removed once stale (not
    at once: another run of the same pipeline may be extracting right now)."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > STALE_IMPORT_FILES_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=root))


def known_device_ids(db) -> frozenset[str]:
    return frozenset(str(d) for d in db["devices"].distinct("_id"))


def _window_starts(pipeline) -> dict[str, str]:
    """The end of the last committed window per collection, from the pipeline's local state (empty
    on a fresh worker until its first run restores the state from the warehouse)."""
    return dict(pipeline.state.get("sources", {}).get(SOURCE_NAME, {}).get("window_end", {}))


def nothing_new(db, starts: dict[str, str], collections: Iterable[str], window_end: datetime) -> bool:
    """True when every collection has a committed window and no document in ``[its end, window_end)``:
    one indexed ``find_one`` per collection. A collection without a committed window (first run,
    fresh worker) always needs a run."""
    for collection in collections:
        if collection not in starts:
            return False
        start = datetime.fromisoformat(starts[collection])
        if start < window_end and db[collection].find_one(
                {"_ingested_at": {"$gte": start, "$lt": window_end}}, {"_id": 1}) is not None:
            return False
    return True


def ensure_cursor_indexes(db, collections: Iterable[str]) -> None:
    """An index on ``_ingested_at`` makes each window a range scan instead of a collection scan."""
    for collection in collections:
        db[collection].create_index("_ingested_at")


# ------------------------------------------------------------------ public API
# Any constant every caller shares ("dltr"): the key of the PostgreSQL advisory lock below.
EXTRACT_LOCK_KEY = 0x646C7472


@contextmanager
def extract_lock() -> Iterator[None]:
    """One load at a time, whoever starts it: the continuous `iot_raw_extract`, `iot_master_dag`,
    `iot extract` and `iot demo` share one dlt pipeline (working directory, state, load
    packages), which dlt does not lock. The lock lives in the warehouse, so it holds across
    processes and workers; the second caller waits (a few seconds) instead of racing the first,
    and a killed process's lock goes with its session."""
    with pg_connect("loader", autocommit=True) as conn:
        if not conn.execute("select pg_try_advisory_lock(%s)", (EXTRACT_LOCK_KEY,)).fetchone()[0]:
            log.info("another extract is loading: waiting for it to finish")
            conn.execute("select pg_advisory_lock(%s)", (EXTRACT_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (EXTRACT_LOCK_KEY,))


def load_raw(collections: list[str] | None = None, progress: bool = False, *, settle: float | None = None,
             pipelines_dir: str | None = None) -> dict:
    """Load new MongoDB documents of ``collections`` (default: all) into ``raw`` once, holding
    the extract lock (:func:`extract_lock`).

    Returns a plain dict: ``{"loaded": {table: rows}, "quarantined": {collection: rows},
    "reasons": {kind: rows}, "documents": n, "window_end": iso, "load_ids": [...],
    "seconds": {step: seconds}}``.
    """
    with extract_lock():
        return _load_raw_unlocked(collections, progress, settle=settle, pipelines_dir=pipelines_dir)


def _load_raw_unlocked(collections: list[str] | None, progress: bool, *, settle: float | None,
                       pipelines_dir: str | None) -> dict:
    collections = list(collections or COLLECTIONS)
    unknown = sorted(set(collections) - set(COLLECTIONS))
    if unknown:
        raise ValueError(f"unknown collection(s) {unknown}; known: {list(COLLECTIONS)}")
    settle = settle_seconds() if settle is None else settle
    now = datetime.now(UTC)
    # BSON datetimes have millisecond precision: a window end finer than that could split a millisecond.
    window_end = (now - timedelta(seconds=settle)).replace(microsecond=(now.microsecond // 1000) * 1000)

    ensure_staging_schema()
    pipeline = make_pipeline(progress=progress, pipelines_dir=pipelines_dir)
    load_ids: list[str] = []
    if pipeline.has_pending_data:
        # a previous run died after extracting: finish its packages first (dlt loads them and stops)
        log.warning("finishing pending load packages of an interrupted run")
        info = pipeline.run()
        if info is not None:
            load_ids += list(info.loads_ids)

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    client = mongo_client()
    try:
        db = mongo_db(client)
        if not load_ids and nothing_new(db, _window_starts(pipeline), collections, window_end):
            # the continuous extract runs back to back: an idle run skips dlt's extract, normalize
            # and load (~0.4 CPU s of bookkeeping for an empty package); the windows stay open and
            # the next run's window starts where the last committed one ended
            return {"loaded": {}, "quarantined": {}, "reasons": {}, "documents": 0,
                    "window_end": window_end.isoformat(), "load_ids": [],
                    "seconds": {"prepare": round(time.perf_counter() - started, 3)}}
        ensure_cursor_indexes(db, collections)
        devices = known_device_ids(db)
    finally:
        client.close()
    seconds["prepare"] = time.perf_counter() - started
    counts: dict[str, ReadCounts] = {}
    files_dir = import_files_dir(Path(pipeline.working_dir) / "import_files")
    try:
        info = pipeline.run(raw_source(collections, window_end, devices, counts, files_dir, now=now),
                            loader_file_format="csv")
    finally:
        # dlt hard-links (or copies) imported files into its load package
        shutil.rmtree(files_dir, ignore_errors=True)
    load_ids += list(info.loads_ids)
    for step in pipeline.last_trace.steps if pipeline.last_trace else ():
        if step.step in ("extract", "normalize", "load") and step.finished_at and step.started_at:
            seconds[step.step] = (step.finished_at - step.started_at).total_seconds()
    started = time.perf_counter()
    ensure_indexes()
    seconds["indexes"] = time.perf_counter() - started

    loaded: dict[str, int] = {}
    for collection, c in counts.items():
        if collection in tables.PARENT_SCHEMAS:
            loaded[collection] = loaded.get(collection, 0) + c.rows
        if collection in tables.CHILD_SCHEMAS:
            loaded[tables.child_table(collection)] = c.child_rows
    reasons: dict[str, int] = {}
    for c in counts.values():
        for kind, n in c.reasons.items():
            reasons[kind] = reasons.get(kind, 0) + n
    return {
        "loaded": loaded,
        "quarantined": {coll: c.quarantined for coll, c in counts.items()},
        "reasons": reasons,
        "documents": sum(c.documents for c in counts.values()),
        "window_end": window_end.isoformat(),
        "load_ids": load_ids,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
