"""The dlt pipeline MongoDB -> warehouse ``raw`` (DESIGN §3-4, docs/extract.md).

Per collection, what changed since the last committed load is captured (dlt_pipelines.capture:
the collection's change stream from the committed token, or a snapshot when there is none) and
validated in the same pass (dlt_pipelines.reader) into CSV files, one per raw table (good rows,
child rows ``<coll>__metrics``, quarantined documents). dlt loads them with its csv loader file
format (COPY) and merges on their key (``_id``; ``(_parent_id, idx)``; ``(collection,
source_id)``), so loading a document again is harmless. Only then are the tokens committed, in
one transaction with the clean-up of replaced rows and the source deletes (dlt_pipelines.progress):
the warehouse, not dlt's local state, says where the next run starts.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dlt_pipelines import contract, tables
from dlt_pipelines.capture import ResumeFailed, current_token, open_stream, peek, read_changes, utc_now_ms
from dlt_pipelines.files import CsvTableWriter, TableFile
from dlt_pipelines.normalise import fill_missing_ts_utc
from dlt_pipelines.progress import CaptureState, Progress, load_states, record_failure, refresh_tokens
from dlt_pipelines.progress import commit as commit_progress
from dlt_pipelines.progress import ensure_tables as ensure_progress_tables
from dlt_pipelines.reader import Batch, CaptureTimes, ReadCounts, read_documents, snapshot_batches
from dlt_pipelines.source_ids import MAX_KEY_LENGTH
from dlt_pipelines.tombstones import Tombstones, load_tombstones
from iot_core import locks
from iot_core.connections import mongo_client, mongo_db, pg_connect, pg_conninfo
from iot_core.settings import get_settings

log = logging.getLogger(__name__)

PIPELINE_NAME = "iot_raw_extract"
DATASET = "raw"
STAGING_DATASET = "raw_staging"
SOURCE_NAME = "mongo_raw"
COLLECTIONS: tuple[str, ...] = contract.COLLECTIONS
# Consecutive failed loads of a collection's changes after which the next run quarantines them
# (reason ``load_failed``, with the error) instead of trying the same load again.
MAX_LOAD_ATTEMPTS = 3


def _configure_dlt() -> None:
    # ERROR: dlt warns on every run that the jsonb hints differ from the Arrow string columns (intended).
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    # We pass credentials explicitly; dlt's Airflow-Variables secrets lookup (on by default when Airflow is
    # installed) cost ~20 s per run here: one metadata-DB query per config key.
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    # Load files are written once and read once on the same disk: gzip cost ~4 s per million points.
    os.environ.setdefault("DATA_WRITER__DISABLE_COMPRESSION", "true")
    # No copy of the data stays behind a load: the files of completed jobs are deleted and the
    # merge's staging tables emptied (the tokens in the warehouse make re-reading possible).
    os.environ.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")
    os.environ.setdefault("LOAD__TRUNCATE_STAGING_DATASET", "true")
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


@dataclass
class ReadPlan:
    """How a run reads one collection: from an open change stream (with the first event it
    already took, if any), a snapshot (no stream), and whether every document goes to quarantine."""

    collection: str
    stream: Any = None
    first_event: Any = None
    quarantine_reason: str | None = None


def _read(plan: ReadPlan, db, ctx: contract.Context, files: BatchFiles, counts: ReadCounts,
          load_id: str, tombstones: Tombstones) -> Progress:
    """Read the plan's changes (or snapshot) into ``files``; the progress to commit once loaded."""
    options = db[plan.collection].codec_options
    if plan.stream is not None:
        changes = read_changes(plan.stream, plan.first_event)
        counts.events = changes.events
        counts.deletes = len(changes.deletes)
        for batch in read_documents(changes.batches(), plan.collection, ctx, CaptureTimes(changes.captured_at),
                                    options, counts, quarantine_reason=plan.quarantine_reason,
                                    tombstones=tombstones):
            files.write(batch)
        if changes.ended:
            log.warning("the change stream of %s ended (%s): the next run takes a snapshot", plan.collection,
                        changes.ended)
        times = [*changes.captured_at.values(), *changes.deletes.values()]
        return Progress(plan.collection, changes.token, captured_until=max(times, default=None),
                        deletes=changes.deletes, changed_ids=list(changes.captured_at), load_id=load_id,
                        more=changes.more)
    # the token first: what changes while the collection is read is replayed by the next run
    token = current_token(db, plan.collection)
    snapshot_at = utc_now_ms()
    counts.snapshot = True
    for batch in read_documents(snapshot_batches(db, plan.collection), plan.collection, ctx,
                                CaptureTimes(snapshot_at), options, counts, quarantine_reason=plan.quarantine_reason,
                                tombstones=tombstones):
        files.write(batch)
    return Progress(plan.collection, token, captured_until=snapshot_at, snapshot_at=snapshot_at, load_id=load_id)


def raw_source(plans: list[ReadPlan], db, ctx: contract.Context, counts: dict[str, ReadCounts],
               files_dir: Path, done: dict[str, Progress], tombstones: Tombstones | None = None):
    """The dlt source: a reader per planned collection plus transformers for rows, child rows and
    quarantine. Each reader writes its collection's changes to CSV files under ``files_dir`` and
    yields them once, at the end; the transformers hand them to dlt as imported load files. A
    reader that finishes puts the progress to commit into ``done``."""
    import dlt

    def reader(plan: ReadPlan) -> Iterator[Any]:
        load_id = dlt.current.load_package_state()["load_id"]
        files = BatchFiles(files_dir, plan.collection, load_id)
        counts[plan.collection] = collection_counts = ReadCounts()
        try:
            progress = _read(plan, db, ctx, files, collection_counts, load_id, tombstones or Tombstones())
        except BaseException:
            files.abort()
            raise
        log.info("read %s: %s", plan.collection, collection_counts)
        # Always yielded, even empty: every raw table exists from the first run on, so the stage
        # models can select from raw.quarantine (and the rest) before any such row arrived.
        yield files.close()
        done[plan.collection] = progress

    @dlt.source(name=SOURCE_NAME, max_table_nesting=0, root_key=False)
    def source():
        resources = []
        for plan in plans:
            collection = plan.collection
            read = dlt.resource(reader(plan), name=f"read_{collection}", selected=False, parallelized=True)
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


def import_files_dir(root: Path) -> Path:
    """A fresh directory for this run's CSV files. Its caller holds the extract lock, so no other
    run of the pipeline is extracting: whatever else is in ``root`` was left by a killed run and
    goes now."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=root))


def known_device_ids(db) -> dict[str, str | None]:
    """The device registry as ``{device id: kind}``: the contract checks that a reading's device is
    registered and of a kind that sends that collection. An id that could not be stored (a NUL, too
    long to index) is no device: readings naming it are quarantined with the registry check."""
    return {d["_id"]: d.get("kind") if isinstance(d.get("kind"), str) else None
            for d in db["devices"].find({}, {"kind": 1})
            if type(d["_id"]) is str and "\x00" not in d["_id"] and len(d["_id"]) <= MAX_KEY_LENGTH // 6}


def plan_reads(db, states: dict[str, CaptureState]) -> tuple[list[ReadPlan], dict[str, dict]]:
    """Which collections have something to read: a snapshot where no token is committed (or the
    server cannot resume from it), else an open change stream whose first event is waiting.
    Collections with nothing new get no plan (an idle run costs one stream open per collection);
    their streams' newer tokens are returned, so that a quiet collection's token stays within the
    history the server keeps."""
    plans = []
    idle_tokens: dict[str, dict] = {}
    for collection, state in states.items():
        reason = None
        if state.failures >= MAX_LOAD_ATTEMPTS:
            reason = f"load_failed: {state.failures} loads of these changes failed, the last with: {state.last_error}"
        if state.resume_token is None:
            plans.append(ReadPlan(collection, quarantine_reason=reason))
            continue
        try:
            stream = open_stream(db, collection, state.resume_token)
        except ResumeFailed as exc:
            log.warning("cannot resume the change stream of %s (%s): taking a snapshot", collection, exc)
            plans.append(ReadPlan(collection, quarantine_reason=reason))
            continue
        first = peek(stream)
        if first is None:
            if stream.resume_token is not None and dict(stream.resume_token) != state.resume_token:
                idle_tokens[collection] = dict(stream.resume_token)
            stream.close()
            continue
        plans.append(ReadPlan(collection, stream, first, quarantine_reason=reason))
    return plans, idle_tokens


# ------------------------------------------------------------------ public API
@contextmanager
def extract_lock() -> Iterator[None]:
    """One load at a time, whoever starts it: the continuous `iot_raw_extract`, `iot_master_dag`,
    `iot extract` and `iot demo` share one dlt pipeline (working directory, packages), which dlt
    does not lock; an erasure (privacy) takes the same lock. See iot_core.locks."""
    with locks.extract_lock("loader"):
        yield


def load_raw(collections: list[str] | None = None, progress: bool = False, *,
             pipelines_dir: str | None = None) -> dict:
    """Load what changed in MongoDB's ``collections`` (default: all) into ``raw`` once, holding
    the extract lock (:func:`extract_lock`).

    Returns a plain dict: ``{"loaded": {table: rows}, "quarantined": {collection: rows},
    "reasons": {kind: rows}, "documents": n, "events": n, "deletes": n, "snapshots": [collection],
    "window_end": iso (the newest change captured), "load_ids": [...], "seconds": {step: seconds}}``.
    """
    with extract_lock():
        result = _load_raw_unlocked(collections, progress, pipelines_dir=pipelines_dir)
        while result.get("more"):  # a backlog larger than one run's limits: go on until caught up
            result = _merge_results(result, _load_raw_unlocked(collections, progress, pipelines_dir=pipelines_dir))
        return result


def _merge_results(a: dict, b: dict) -> dict:
    def add(x: dict, y: dict) -> dict:
        return {k: x.get(k, 0) + y.get(k, 0) for k in {*x, *y}}

    return {"loaded": add(a["loaded"], b["loaded"]), "quarantined": add(a["quarantined"], b["quarantined"]),
            "reasons": add(a["reasons"], b["reasons"]), "documents": a["documents"] + b["documents"],
            "events": a["events"] + b["events"], "deletes": a["deletes"] + b["deletes"],
            "erased": a.get("erased", 0) + b.get("erased", 0),
            "snapshots": sorted({*a["snapshots"], *b["snapshots"]}), "window_end": b["window_end"],
            "load_ids": a["load_ids"] + b["load_ids"], "seconds": add(a["seconds"], b["seconds"]),
            "more": b["more"]}



def _result(counts: dict[str, ReadCounts], done: dict[str, Progress], load_ids: list[str],
            seconds: dict[str, float]) -> dict:
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
    until = max((p.captured_until for p in done.values() if p.captured_until is not None), default=None)
    return {
        "loaded": loaded,
        "quarantined": {coll: c.quarantined for coll, c in counts.items()},
        "reasons": reasons,
        "documents": sum(c.documents for c in counts.values()),
        "events": sum(c.events for c in counts.values()),
        "deletes": sum(c.deletes for c in counts.values()),
        "snapshots": sorted(coll for coll, c in counts.items() if c.snapshot),
        "erased": sum(c.erased for c in counts.values()),
        "window_end": (until or datetime.now(UTC)).isoformat(),
        "load_ids": load_ids,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "more": any(p.more for p in done.values()),
    }


def refused_collections(exc: BaseException, collections: list[str]) -> tuple[list[str], str]:
    """The collections whose load the warehouse refused for what it holds (a data exception, an
    integrity violation, a value over a limit; as opposed to a server that is away): from the
    failed job's table when dlt names it, else all of ``collections``. Empty when the failure is
    not such a refusal (dlt retries some refusals as transient, so its own classification is not
    enough: the SQLSTATE decides). Also a short description of the refusal."""
    from dlt.common.destination.exceptions import DestinationTerminalException

    job_id = None
    refused = False
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        job_id = job_id or getattr(e, "job_id", None)
        sqlstate = getattr(e, "pgcode", None) or getattr(e, "sqlstate", None)
        if sqlstate and sqlstate[:2] in DATA_ERROR_CLASSES:
            refused = True
            reason = f"SQLSTATE {sqlstate}: {' '.join(str(e).split())}"
        elif isinstance(e, DestinationTerminalException):
            refused = True
        todo += [getattr(e, "exception", None), getattr(e, "client_exception", None), e.__cause__, e.__context__]
    if not refused:
        return [], reason
    table = job_id.split(".", 1)[0] if job_id else None  # job ids are "<table>.<file id>[.<retry>].<format>"
    named = [c for c in collections if table is not None and (table == c or table.startswith(f"{c}__"))]
    return named or list(collections), (f"job {job_id}: {reason}" if job_id else reason)


# SQLSTATE classes of a refusal for what the data holds: data exception, integrity constraint
# violation, program limit exceeded (an index row too large)
DATA_ERROR_CLASSES = frozenset({"22", "23", "54"})


def delete_loaded_packages(pipeline, load_ids: list[str]) -> None:
    """dlt keeps a completed package's folder (schema, state, job list); ours are of no further use."""
    loaded = Path(pipeline.working_dir) / "load" / "loaded"
    for load_id in load_ids:
        shutil.rmtree(loaded / load_id, ignore_errors=True)


def _load_raw_unlocked(collections: list[str] | None, progress: bool, *, pipelines_dir: str | None) -> dict:
    collections = list(collections or COLLECTIONS)
    unknown = sorted(set(collections) - set(COLLECTIONS))
    if unknown:
        raise ValueError(f"unknown collection(s) {unknown}; known: {list(COLLECTIONS)}")
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    ensure_staging_schema()
    with pg_connect("loader") as conn:
        ensure_progress_tables(conn)
        conn.commit()
        states = load_states(conn, collections)
        tombstones = load_tombstones(conn)

    client = mongo_client()
    plans: list[ReadPlan] = []
    try:
        db = mongo_db(client)
        plans, idle_tokens = plan_reads(db, states)
        if idle_tokens:
            with pg_connect("loader") as conn:
                refresh_tokens(conn, idle_tokens)
        seconds["prepare"] = time.perf_counter() - started
        if not plans:
            # the continuous extract runs back to back: an idle run skips dlt (~0.4 CPU s of
            # bookkeeping for an empty package)
            return _result({}, {}, [], seconds)
        ctx = contract.Context(now=datetime.now(UTC), known_devices=known_device_ids(db))
        pipeline = make_pipeline(progress=progress, pipelines_dir=pipelines_dir)
        if pipeline.has_pending_data:
            # the tokens in the warehouse say what is loaded: a killed or refused run's packages
            # are read again, never resumed from local files
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated for abort_packages, which keeps a record
                pipeline.drop_pending_packages()
        counts: dict[str, ReadCounts] = {}
        done: dict[str, Progress] = {}
        files_dir = import_files_dir(Path(pipeline.working_dir) / "import_files")
        try:
            info = pipeline.run(raw_source(plans, db, ctx, counts, files_dir, done, tombstones),
                                loader_file_format="csv")
        except Exception as exc:
            refused, reason = refused_collections(exc, [p.collection for p in plans])
            if refused:
                with pg_connect("loader") as conn:
                    record_failure(conn, refused, reason)
                log.error("the warehouse refused the load of %s (attempt counted; after %d the changes are "
                          "quarantined): %s", refused, MAX_LOAD_ATTEMPTS, exc)
            raise
        finally:
            # dlt hard-links (or copies) imported files into its load package
            shutil.rmtree(files_dir, ignore_errors=True)
    finally:
        for plan in plans:
            if plan.stream is not None:
                plan.stream.close()
        client.close()
    load_ids = list(info.loads_ids)
    for step in pipeline.last_trace.steps if pipeline.last_trace else ():
        if step.step in ("extract", "normalize", "load") and step.finished_at and step.started_at:
            seconds[step.step] = (step.finished_at - step.started_at).total_seconds()
    began = time.perf_counter()
    ensure_indexes()
    if any(p.collection == "air_quality" for p in plans):  # rows loaded before raw had ts_utc (normalise.py)
        fill_missing_ts_utc(contract.device_zone_from_settings())
    seconds["indexes"] = time.perf_counter() - began
    began = time.perf_counter()
    with pg_connect("loader") as conn:
        commit_progress(conn, [done[p.collection] for p in plans])
    seconds["commit"] = time.perf_counter() - began
    delete_loaded_packages(pipeline, load_ids)
    return _result(counts, done, load_ids, seconds)
