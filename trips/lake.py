"""Access to the Parquet lake ``ROOT/<device>/<message>/<yyyy>/<mm>/<dd>/*.parquet``, local or S3.

One small class hides the difference between a local directory and an S3-compatible object store
(AWS, MinIO, moto): listing a day's files, writing the summary atomically, and a DuckDB connection
that can read the lake's paths. DuckDB's ``httpfs`` extension cannot be downloaded here, so S3 goes
through ``pyarrow.fs.S3FileSystem`` wrapped as an fsspec filesystem and registered with DuckDB.
Credentials come from the standard AWS environment variables (``AWS_ACCESS_KEY_ID``, ...).
"""

from __future__ import annotations

import logging
import os
import posixpath
import uuid
from contextlib import nullcontext
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from trips.config import configured_s3_cache_mb, configured_s3_concurrency, configured_s3_endpoint
from trips.output_format import rename_schema_root

if TYPE_CHECKING:  # pyarrow costs ~0.4 s of start-up: the local path of `iot trips` never imports it
    import duckdb
    import pyarrow as pa
    import pyarrow.fs as pafs

    from trips.s3_objects import S3Objects

log = logging.getLogger(__name__)

OUTPUT_DIR = ("aggregations", "tripsummary")


def day_path(day: date) -> str:
    return day.strftime("%Y/%m/%d")


class Lake:
    """A lake root: a local directory or ``s3://bucket/prefix``."""

    def __init__(self, root: str | os.PathLike, s3_endpoint: str | None = None):
        root = str(root)
        self.is_s3 = root.startswith("s3://")
        if self.is_s3:
            self.base = root[len("s3://"):].strip("/")
            if not self.base:
                raise ValueError(f"S3 lake root needs a bucket: {root!r}")
            endpoint = s3_endpoint or configured_s3_endpoint()
            self._endpoint = _endpoint_url(endpoint)
            self._fs = _s3_filesystem(endpoint)  # pyarrow's: writes the day's file, the DAG's parts
            self._objects = None
            self.root = f"s3://{self.base}"
        else:
            self.base = str(Path(root).resolve())
            self._fs = None
            self.root = self.base

    @property
    def fs(self) -> pafs.FileSystem:
        """pyarrow filesystem of the lake (created on first use for a local lake)."""
        if self._fs is None:
            import pyarrow.fs as pafs

            self._fs = pafs.LocalFileSystem()
        return self._fs

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # -- paths --------------------------------------------------------------------------------
    def _fs_path(self, *parts: str) -> str:
        """Path for pyarrow's filesystem (no scheme)."""
        return posixpath.join(self.base, *parts) if self.is_s3 else os.path.join(self.base, *parts)

    def _reader_path(self, fs_path: str) -> str:
        """Path as DuckDB reads it (through the registered fsspec filesystem for S3)."""
        return f"s3://{fs_path}" if self.is_s3 else fs_path

    def output_relpath(self, day: date) -> str:
        return posixpath.join(*OUTPUT_DIR, day_path(day), f"{day.strftime('%Y%m%d')}.parquet")

    def output_uri(self, day: date) -> str:
        return self._reader_path(self._fs_path(self.output_relpath(day)))

    # -- listing ------------------------------------------------------------------------------
    def s3_client(self):
        """A builder of the botocore client an S3 lake's objects are fetched with (see trips.s3_objects)."""
        from trips.s3_objects import botocore_client

        return botocore_client(self._endpoint, _region())

    @property
    def objects(self) -> S3Objects:
        """The S3 lake's objects as DuckDB reads them (listings, objects fetched ahead; see trips.s3_objects)."""
        if self._objects is None:
            from trips.s3_objects import S3Objects

            self._objects = S3Objects(self._fs, concurrency=configured_s3_concurrency(),
                                      budget_bytes=configured_s3_cache_mb() << 20, client=self.s3_client())
        return self._objects

    def day_files(self, device: str, message: str, day: date) -> list[str] | None:
        """The day's Parquet files of one device and message, or None when the folder is missing."""
        return self.day_files_many([(device, message, day)])[0]

    def day_files_many(self, folders: list[tuple[str, str, date]]) -> list[list[str] | None]:
        """day_files of several (device, message, day) folders; an S3 lake lists them concurrently."""
        paths = [self._fs_path(device, message, day_path(day)) for device, message, day in folders]
        if self.is_s3:
            # S3 has no folders: no object under the prefix means "missing"
            return [None if found is None else [self._reader_path(p) for p in found if p.endswith(".parquet")]
                    for found in self.objects.list_folders(paths)]
        listed = []
        for folder in paths:
            try:
                with os.scandir(folder) as it:
                    listed.append(sorted(e.path for e in it if e.name.endswith(".parquet") and e.is_file()))
            except FileNotFoundError:
                listed.append(None)
        return listed

    def reading(self, files: list[str], footers_only: bool = False, rank: int = 0):
        """Context of a query that reads these files: on S3 their objects are fetched ahead, many at a
        time (only the footers' bytes of large files when ``footers_only``; a lower ``rank`` first, 0 for
        a query about to run); nothing to do locally."""
        if self.is_s3 and files:
            return self.objects.reading(files, footers_only, rank)
        return nullcontext()

    def devices(self) -> list[str]:
        """Device folders at the lake's top level (the output folder excluded)."""
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True))
        return sorted(posixpath.basename(i.path) for i in infos
                      if i.type == pafs.FileType.Directory and posixpath.basename(i.path) != OUTPUT_DIR[0])

    # -- reading and writing ------------------------------------------------------------------
    def write_atomic(self, table: pa.Table, relpath: str, metadata: dict[str, str] | None = None) -> str:
        """Write a Parquet file so readers see either the old file or the complete new one.

        Local: write a temporary file in the same folder, then rename over the target (atomic on
        POSIX). S3: one object upload, which becomes visible only when complete. ``metadata``: footer
        key-value entries added to (or replacing those of) the table's schema metadata.
        """
        import pyarrow.parquet as pq

        if metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   **{k.encode(): v.encode() for k, v in metadata.items()}})
        target = self._fs_path(*relpath.split("/"))
        if self.is_s3:
            pq.write_table(table, target, filesystem=self.fs)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
            try:
                pq.write_table(table, tmp)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return self._reader_path(target)

    def write_query_atomic(self, con: duckdb.DuckDBPyConnection, query: str, relpath: str,
                           metadata: dict[str, str] | None = None) -> str:
        """Write the rows of a DuckDB query as a Parquet file, atomically (see write_atomic), with the
        footer key-value ``metadata``.

        DuckDB's own Parquet writer writes a temporary local file, whose schema root is then named as
        pyarrow names it (see trips.output_format); no pyarrow.parquet needed, which keeps the CLI's
        start-up small. Local lakes: the file is renamed over the target. S3: it is uploaded as one
        object, visible only when complete."""
        import tempfile

        target = self._fs_path(*relpath.split("/"))
        folder = tempfile.gettempdir() if self.is_s3 else os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
        try:
            options = "format parquet"
            if metadata:
                options += ", kv_metadata {" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in metadata.items()) + "}"
            con.execute(f"copy ({query}) to {_sql_str(tmp)} ({options})")
            rename_schema_root(tmp)
            if self.is_s3:
                with open(tmp, "rb") as source, self.fs.open_output_stream(target) as sink:
                    sink.write(source.read())
            else:
                os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self._reader_path(target)

    def probe(self, path: str) -> None:
        """Read the first byte of a lake file (a path as day_files gives it): raises OSError when its bytes
        cannot be read at all, which tells an unreachable file from a damaged one."""
        if self.is_s3:
            self.objects.probe(path)
        else:
            with open(path, "rb") as fh:
                fh.read(1)

    def read_table(self, relpath: str) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self._fs_path(*relpath.split("/")), filesystem=self.fs)

    def exists(self, relpath: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self._fs_path(*relpath.split("/"))).type == pafs.FileType.File

    def delete(self, relpath: str) -> bool:
        path = self._fs_path(*relpath.split("/"))
        if not self.is_s3:
            if not os.path.isfile(path):
                return False
            os.unlink(path)
            return True
        import pyarrow.fs as pafs

        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return False
        self.fs.delete_file(path)
        return True

    def delete_dir(self, relpath: str) -> None:
        import pyarrow.fs as pafs

        path = self._fs_path(*relpath.split("/"))
        if self.fs.get_file_info(path).type != pafs.FileType.NotFound or self.is_s3:
            self.fs.delete_dir_contents(path, missing_dir_ok=True)
            if not self.is_s3:
                self.fs.delete_dir(path)

    def list_files(self, relpath: str) -> list[str]:
        """Files directly under a folder (relative paths), sorted."""
        import pyarrow.fs as pafs

        path = self._fs_path(*relpath.split("/"))
        infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(posixpath.join(relpath, posixpath.basename(i.path)) for i in infos
                      if i.type == pafs.FileType.File)

    def duckdb(self, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        """An in-process DuckDB connection that can read this lake's paths."""
        import duckdb

        # No async I/O threads: DuckDB's default 8 prefetch Parquet columns beside the reading thread,
        # which here (local files in the page cache, one reading thread per slice, every core busy)
        # added 10-15 % CPU time for no wall time gained (the job: 0.49 -> 0.43 CPU s, 0.28 -> 0.25 s).
        con = duckdb.connect(config={"async_threads": 0, **({"threads": threads} if threads else {})})
        self._configure(con)
        if self.is_s3:  # DuckDB routes an s3:// path to the fsspec filesystem of that protocol
            con.register_filesystem(self.objects)
            # the objects are held (within their budget) by self.objects already: a second copy in
            # DuckDB's buffer pool only costs memory
            con.execute("set enable_external_file_cache = false")
        return con

    def duckdb_session(self, database: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Another connection (own temp tables and session) to the database of ``database``: slices
        run side by side in one DuckDB instance, sharing its memory, parsed footers and filesystems."""
        con = database.cursor()
        self._configure(con)
        return con

    @staticmethod
    def _configure(con: duckdb.DuckDBPyConnection) -> None:
        # Naive timestamps mean UTC (as pandas' Timestamp.timestamp() reads them in the seed); fix the
        # session zone so a TIMESTAMP/TIMESTAMPTZ mix never depends on the machine's local zone.
        con.execute("set TimeZone = 'UTC'")
        # Parquet min/max statistics leave NaN out (pyarrow writes them so); DuckDB's statistics
        # propagation then proves "x is NaN" impossible and folds the NaN handling away, so NaN
        # readings would be counted and averaged. Found by the parity test; keep it off.
        con.execute("set disabled_optimizers = 'statistics_propagation'")
        # A day's footers are read several times (column presence, the t statistics, the scans): keep
        # them parsed for the connection's life instead of reading and decoding them again each time.
        con.execute("set parquet_metadata_cache = true")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _endpoint_url(endpoint: str | None) -> str | None:
    """scheme://host[:port] of an S3-compatible endpoint (https when it names none), None for AWS."""
    if not endpoint:
        return None
    scheme, _, host = endpoint.partition("://")
    if not host:
        scheme, host = "https", endpoint
    return f"{scheme}://{host.rstrip('/')}"


def _s3_filesystem(endpoint: str | None) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    # allow_delayed_open: an object written in one part is uploaded with one PUT (else a multipart
    # upload: 3 requests); a failed upload is then raised when the stream is closed, which every writer
    # here does before it reports the file written
    kwargs: dict = {"region": _region(), "allow_delayed_open": True}
    if url := _endpoint_url(endpoint):
        scheme, _, host = url.partition("://")
        kwargs.update(endpoint_override=host, scheme=scheme)
    return pafs.S3FileSystem(**kwargs)
