"""Trip summary of one day of the lake, in DuckDB SQL (the semantics of seed 003's script).

Per device and day the trip-identifier message is sorted by ``t``; a gap of more than
``gap_minutes`` (10) between consecutive readings starts a new trip. Trip *i* covers
``[start_i - 1 s, start_{i+1} - 2 s]`` and the last one ends at ``last t + 1 s`` (both ends
inclusive), exactly the seed's windows. Each configured signal is aggregated over the rows of its
message inside each window: ``Value`` (avg / max / min / sum, nulls skipped; the sum of nothing is
0, the others null), ``Count`` (non-null values), ``Duration`` (max t - min t of the message's
rows in the window, seconds), ``TripStart`` / ``TripEnd`` (window edges, whole epoch seconds;
naive timestamps are read as UTC), ``TripID`` = ``<device>_<TripStart>``.

Why it is fast: the seed re-reads every file of a message once per trip and aggregation. Here every
file's footer is read once; the trip windows come from the identifier's ``t`` reduced to gap-wide
buckets, and the same scan adds up the identifier's own signals per bucket; a file wholly inside one
trip (by its ``t`` statistics) is aggregated on its own without reading ``t``; a file overlapping no
trip is not read; only the files spanning a trip edge make each reading find its trip (a CASE over
the few windows its file overlaps). The slices of devices run in parallel, one single-threaded
connection each (so the output's bits do not depend on the thread count). No pandas, and no pyarrow
on a local lake: a local day's file is written by DuckDB itself.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from trips.config import TripConfig, configured_gap_minutes, configured_shard_size
from trips.lake import Lake

if TYPE_CHECKING:  # pyarrow is imported only where a caller asks for an Arrow table (not by `iot trips`)
    import duckdb
    import pyarrow as pa

log = logging.getLogger(__name__)

COLUMNS = ("DeviceID", "Message", "Signal", "Aggregation", "Value", "Count", "Duration",
           "TripStart", "TripEnd", "TripID", "Cluster")


def output_schema() -> pa.Schema:
    """Arrow schema of the summary (the seed's columns and types)."""
    import pyarrow as pa

    return pa.schema([
        ("DeviceID", pa.string()), ("Message", pa.string()), ("Signal", pa.string()),
        ("Aggregation", pa.string()), ("Value", pa.float64()), ("Count", pa.int64()),
        ("Duration", pa.float64()), ("TripStart", pa.int64()), ("TripEnd", pa.int64()),
        ("TripID", pa.string()), ("Cluster", pa.string()),
    ])


_SQL_AGG = {"avg": "avg({0})", "sum": "sum({0})", "max": "max({0})", "min": "min({0})"}


@dataclass(frozen=True)
class Options:
    gap_minutes: float = 10.0
    # Off (the seed's behaviour): each day's folder is summarised on its own, so a trip running
    # over midnight is cut in two. On: trips are assigned to the day they start in and continue
    # into the next day's files; a trip continuing from the previous day is left to that day.
    cross_midnight: bool = False
    # Worker threads per day (default: the machine's cores). The devices are cut into slices of
    # slice_devices; each slice is summarised by one single-threaded DuckDB connection, so the slices, and with
    # them every floating-point sum, are the same whatever the thread count (see _summarise).
    # Default: TRIPS_SHARD_SIZE (25), so a DAG shard is one slice and the DAG writes the CLI's bits.
    # Each slice costs a fixed 0.05-0.08 CPU s (a connection, some 25 statements): not much smaller.
    threads: int | None = None
    slice_devices: int = field(default_factory=lambda: configured_shard_size())

    @classmethod
    def from_env(cls, **overrides) -> Options:
        return cls(**{"gap_minutes": configured_gap_minutes(), **overrides})

    def slices(self, devices: list[str]) -> list[list[str]]:
        if self.slice_devices < 1:
            raise ValueError("slice_devices must be at least 1")
        return [devices[i:i + self.slice_devices] for i in range(0, len(devices), self.slice_devices)] or [[]]

    def worker_count(self, slices: int) -> int:
        return max(1, min(self.threads or os.cpu_count() or 1, slices))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class _FileMap:
    """The files of one message: path, device number and day offset (0 = the day summarised)."""
    files: list[str] = field(default_factory=list)
    devs: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def add(self, file: str, dev: int, offset: int) -> None:
        self.files.append(file)
        self.devs.append(dev)
        self.offsets.append(offset)

    def without(self, devs: set[int]) -> _FileMap:
        keep = [i for i, d in enumerate(self.devs) if d not in devs]
        return _FileMap([self.files[i] for i in keep], [self.devs[i] for i in keep], [self.offsets[i] for i in keep])


@dataclass
class _Footer:
    """What a file's Parquet footer says: its columns, and the span of ``t`` over all row groups."""
    columns: set[str] = field(default_factory=set)
    t_known: bool = True       # every row group has min/max statistics of an INT64 timestamp t
    t_no_nulls: bool = True    # every row group's statistics count no null t
    t_min_us: int | None = None
    t_max_us: int | None = None
    t_read: bool = True        # False: only the columns were read (parquet_schema), no statistics
    _t_row_groups: int = 0

    def add_t_row_group(self, is_int64: bool, min_us: int | None, max_us: int | None, nulls: int | None) -> None:
        self._t_row_groups += 1
        if not is_int64 or min_us is None or max_us is None:
            self.t_known = False
            return
        self.t_no_nulls = self.t_no_nulls and nulls == 0
        self.t_min_us = min_us if self.t_min_us is None else min(self.t_min_us, min_us)
        self.t_max_us = max_us if self.t_max_us is None else max(self.t_max_us, max_us)

    @property
    def usable(self) -> bool:
        return self.t_read and self.t_known and self._t_row_groups > 0


@dataclass
class _WholeFiles(_FileMap):
    """Files wholly inside one trip window: the window's start, and the first and last t of each file."""
    starts: list[int] = field(default_factory=list)
    first_us: list[int] = field(default_factory=list)
    last_us: list[int] = field(default_factory=list)


class _DayRun:
    """State of one day's summary: a DuckDB connection holding the day's trip windows.

    Devices are numbered by their position in the configuration (``dev``); SQL joins and sorts on
    that integer instead of the device string (about 40 % faster on 5 M IMU rows).
    """

    def __init__(self, lake: Lake, config: TripConfig, day: date, devices: list[str], options: Options,
                 con: duckdb.DuckDBPyConnection | None = None):
        self.lake, self.config, self.day, self.options = lake, config, day, options
        self.devices = devices
        self.dev_index = {d: i for i, d in enumerate(devices)}
        # One DuckDB thread: floating-point sums then add the rows in one fixed order, so re-running
        # a day writes the same bytes (with several threads the partial sums meet in a different
        # order each run and the last bits change). Exact DECIMAL sums would also be reproducible
        # but doubled the CPU time; parallelism comes from several _DayRun over slices of devices.
        self.con = con or lake.duckdb(threads=1)
        self.con.execute("create temp table windows (dev integer, start_us bigint, end_us bigint)")

        # file -> _Footer: the footers' facts this run needs, read once per file (a message used both
        # as the trip identifier and as an aggregated message is not read twice)
        self.footers: dict[str, _Footer] = {}
        self._windows_by_dev: dict[int, list[tuple[int, int]]] | None = None  # set by find_windows()
        # identifier message -> (table of its per-file, per-bucket partials, file -> file_index there,
        # the signals it holds partials of)
        self._bucket_scans: dict[str, tuple[str, dict[str, int], set[str]]] = {}

    trips = rows = 0  # set by _summarise_slice

    def close(self) -> None:
        self.con.close()

    def _files(self, devices: list[str], message: str, offsets: tuple[int, ...]) -> _FileMap:
        """(file, dev, day_offset) of the message's files; missing folders are logged."""
        file_map = _FileMap()
        for device in devices:
            for offset in offsets:
                found = self.lake.day_files(device, message, self.day + timedelta(days=offset))
                if not found:
                    if offset == 0:
                        log.info("%s: no %s files for device %s (%s)", self.day, message, device,
                                 "folder missing" if found is None else "empty folder")
                    continue
                file_map.files += found
                file_map.devs += [self.dev_index[device]] * len(found)
                file_map.offsets += [offset] * len(found)
        return file_map

    def _read_footers(self, files: list[str], t_stats: bool = True) -> None:
        """Read the footer facts of the files not read yet: their columns, and the span and null count
        of their ``t`` (row-group statistics). One ``parquet_metadata`` query; only files it has no row
        for (no row groups) ask ``parquet_schema`` for their columns. Without ``t_stats`` (files whose
        ``t`` is read anyway: the trip identifier's) only the columns, from ``parquet_schema``, which
        costs about half as much; such a file is read again if its statistics are asked for later."""
        if not t_stats:
            new = [f for f in files if f not in self.footers]
            if new:
                self._read_columns(new, t_read=False)
            return
        new = [f for f in files if f not in self.footers or not self.footers[f].t_read]
        if not new:
            return
        rows = self.con.execute("""
            select file_name, path_in_schema,
                   case when path_in_schema = 't' then type = 'INT64' end,
                   case when path_in_schema = 't' then epoch_us(try_cast(stats_min_value as timestamptz)) end,
                   case when path_in_schema = 't' then epoch_us(try_cast(stats_max_value as timestamptz)) end,
                   case when path_in_schema = 't' then stats_null_count end
            from parquet_metadata($files)
        """, {"files": new}).fetchall()
        read: dict[str, _Footer] = {}
        for file, column, is_int64, min_us, max_us, nulls in rows:
            footer = read.get(file) or read.setdefault(file, _Footer())
            footer.columns.add(column)
            if column == "t":
                footer.add_t_row_group(is_int64, min_us, max_us, nulls)
        self.footers.update(read)
        unseen = [f for f in new if f not in read]
        if unseen:
            self._read_columns(unseen, t_read=True)

    def _read_columns(self, files: list[str], t_read: bool) -> None:
        """Footers holding only the files' columns (``parquet_schema``)."""
        footers = {f: _Footer(t_read=t_read) for f in files}
        for file, column in self.con.execute("select file_name, name from parquet_schema($files)"
                                             " where num_children is null or num_children = 0",
                                             {"files": files}).fetchall():
            footers[file].columns.add(column)
        self.footers.update(footers)

    def _columns_present(self, file_map: _FileMap, wanted: set[str], t_stats: bool = True) -> dict[int, set[str]]:
        """Which of the wanted columns each device's files hold (from the Parquet footers only)."""
        self._read_footers(file_map.files, t_stats)
        present: dict[int, set[str]] = {}
        for file, dev in zip(file_map.files, file_map.devs, strict=True):
            present.setdefault(dev, set()).update(self.footers[file].columns & (wanted | {"t"}))
        return present

    def _usable(self, file_map: _FileMap, present: dict[int, set[str]], message: str) -> _FileMap:
        """Drop (with a warning) the files of devices whose files of this message have no 't' column."""
        devs = set(file_map.devs)
        without_t = sorted(d for d in devs if "t" not in present.get(d, set()))
        for dev in without_t:
            log.warning("%s: %s files of device %s have no column 't'; skipped", self.day, message, self.devices[dev])
        return file_map.without(set(without_t)) if without_t else file_map

    def _partials_in_config(self, message: str) -> dict[str, set[str]]:
        """Signal -> partial aggregates (sum, min, max) any cluster's aggregation of the message needs;
        every signal keeps its sum (the NaN check of the per-file way reads it, and avg needs it)."""
        partial_of = {"avg": "sum", "sum": "sum", "min": "min", "max": "max"}
        wanted: dict[str, set[str]] = {}
        for cluster in self.config.clusters:
            for agg in cluster.aggregations:
                if agg.message == message:
                    for s in agg.signals:
                        wanted.setdefault(s, {"sum"}).add(partial_of[agg.aggregation])
        return wanted

    def find_windows(self) -> int:
        by_message: dict[str, list[str]] = {}
        for device in self.devices:
            by_message.setdefault(self.config.cluster_of(device).trip_message, []).append(device)
        offsets = (-1, 0, 1) if self.options.cross_midnight else (0,)
        gap_us = int(round(self.options.gap_minutes * 60 * 1_000_000))
        if gap_us < 0:
            raise ValueError(f"gap_minutes must not be negative, got {self.options.gap_minutes}")
        # Readings are first reduced to buckets of gap_us: two readings in one bucket are less than
        # gap_us apart, so a gap longer than gap_us can only lie between the last reading of a bucket
        # and the first of the next non-empty one. The window functions then sort a few thousand
        # buckets instead of every reading (the windows are exactly those of the sorted readings).
        width = max(gap_us, 1)
        bucket = f"(t_us // {width}) - (t_us % {width} < 0)::bigint"  # floor division, also before 1970
        for m_index, (message, devices) in enumerate(by_message.items()):
            file_map = self._files(devices, message, offsets)
            if file_map:
                file_map = self._usable(file_map, self._columns_present(file_map, {"t"}, t_stats=False), message)
            if not file_map:
                continue
            # One scan of the identifier message gives both its trip windows and the partial aggregates
            # of its own signals (it is usually aggregated too): per file and gap-wide bucket, the first
            # and last t, and per signal count, sum, min, max. A bucket lies wholly inside one trip (a
            # trip starts at the first reading of a bucket), so aggregate() adds up buckets instead of
            # reading these files again (see _aggregate_message). Rows with a null t form
            # the bucket null, which holds no first reading and so joins no window.
            held = set().union(*(self.footers[f].columns for f in file_map.files))
            signals = {s: fns for s, fns in self._partials_in_config(message).items() if s in held}
            partials = [f"count({_ident(s)}) as {_ident('n:' + s)}" for s in sorted(signals)]
            partials += [f"{fn}({_ident(s)}) as {_ident(fn + ':' + s)}" for s in sorted(signals) for fn in sorted(signals[s])]
            values = "".join(f", nullif(cast(r.{_ident(s)} as double), 'nan'::double) as {_ident(s)}" for s in sorted(signals))
            table = f"ident_{m_index}"
            self.con.execute(f"""
                create temp table {table} as
                select list_extract($devs, file_index::bigint + 1) as dev, *
                from (select file_index, {bucket} as bucket, min(t_us) as first_us, max(t_us) as last_us,
                             count(*) as readings{''.join(', ' + e for e in partials)}
                      from (select r.file_index, epoch_us(r.t) as t_us{values}
                            from read_parquet($files, union_by_name = true) r)
                      group by all)
            """, {"files": file_map.files, "devs": file_map.devs})
            self.con.execute(f"""
                create or replace temp table trip_buckets as
                select dev, bucket, min(first_us) as first_us, max(last_us) as last_us,
                       arg_min(list_extract($offsets, file_index::bigint + 1), first_us) as day_offset,
                       sum(readings) as readings
                from {table} group by dev, bucket
            """, {"offsets": file_map.offsets})
            # Every reading of trip i lies in [start_i - 1 s, start_(i+1) - 2 s] only when the gap is
            # at least 2 s (its last reading is more than a gap before the next start); a smaller gap
            # leaves the files to the other ways.
            if gap_us >= 2_000_000:
                self._bucket_scans[message] = (table, {f: i for i, f in enumerate(file_map.files)}, set(signals))
            nulls = self.con.execute("select coalesce(sum(readings), 0) from trip_buckets where bucket is null"
                                     ).fetchall()[0][0]
            if nulls:
                log.warning("%s: %d rows of %s have no timestamp 't' and belong to no trip", self.day, nulls, message)
            # A reading more than gap_us after the previous one starts a trip; trip i spans
            # [start_i - 1 s, start_{i+1} - 2 s], the last one ends 1 s after the last reading.
            self.con.execute(f"""
                insert into windows
                with ordered as (
                    select dev, day_offset, first_us,
                           lag(last_us) over (partition by dev order by bucket) as prev_us
                    from trip_buckets where bucket is not null
                ), starts as (
                    select dev, day_offset, first_us from ordered
                    where prev_us is null or first_us - prev_us > {gap_us}
                ), last_reading as (
                    select dev, max(last_us) as last_us from trip_buckets group by dev
                ), edges as (
                    select s.dev, s.day_offset, s.first_us - 1000000 as start_us,
                           coalesce(lead(s.first_us) over (partition by s.dev order by s.first_us) - 2000000,
                                    l.last_us + 1000000) as end_us
                    from starts s join last_reading l using (dev)
                )
                select dev, start_us, end_us from edges where day_offset = 0
            """)
        self._windows_by_dev = {}
        for dev, start_us, end_us in self.con.execute("select dev, start_us, end_us from windows").fetchall():
            self._windows_by_dev.setdefault(dev, []).append((start_us, end_us))
        return sum(len(w) for w in self._windows_by_dev.values())

    def _split_by_window(self, file_map: _FileMap) -> tuple[_WholeFiles, _FileMap]:
        """Sort the files by the span of their ``t`` (min and max from the Parquet footers' statistics):

        - files wholly inside one trip window and without a null ``t``: every row belongs to that trip,
          so the file is aggregated without reading ``t`` or looking up each reading's trip;
        - files that overlap no window of their device: none of their rows counts; not read at all;
        - the rest (spanning a window edge, null ``t`` values, or no usable statistics): each reading
          looks up its trip. Statistics are trusted only for INT64 timestamps (ordered like time;
          INT96 and string statistics are not) and only when every row group has them.
        """
        self._read_footers(file_map.files)
        if self._windows_by_dev is None:
            raise RuntimeError("find_windows() comes first")
        whole, per_row = _WholeFiles(), _FileMap()
        for file, dev, offset in zip(file_map.files, file_map.devs, file_map.offsets, strict=True):
            footer, windows = self.footers[file], self._windows_by_dev.get(dev, [])
            if footer.usable:
                lo, hi = footer.t_min_us, footer.t_max_us
                if not any(start <= hi and lo <= end for start, end in windows):
                    continue
                inside = [start for start, end in windows if start <= lo and hi <= end]
                if inside and footer.t_no_nulls:
                    whole.starts.append(inside[0])
                    whole.first_us.append(lo)
                    whole.last_us.append(hi)
                    whole.add(file, dev, offset)
                    continue
            per_row.add(file, dev, offset)
        return whole, per_row

    def _bucketed(self, message: str, file_map: _FileMap) -> tuple[tuple[str, list[int], set[str]] | None, _FileMap]:
        """Split off the files whose partials find_windows already computed (the identifier's scan):
        (its table, their file indexes there, the signals it holds) and the other files."""
        scan = self._bucket_scans.get(message)
        if scan is None:
            return None, file_map
        table, index_of, held = scan
        covered = [index_of[f] for f in file_map.files if f in index_of]
        if not covered:
            return None, file_map
        rest = _FileMap()
        for file, dev, offset in zip(file_map.files, file_map.devs, file_map.offsets, strict=True):
            if file not in index_of:
                rest.add(file, dev, offset)
        return (table, covered, held), rest

    def _windows_of(self, file: str, dev: int) -> list[tuple[int, int]]:
        """The windows of the device that the file's readings can fall in."""
        footer, windows = self.footers[file], self._windows_by_dev.get(dev, [])
        if not footer.usable:
            return windows
        return [(start, end) for start, end in windows if start <= footer.t_max_us and footer.t_min_us <= end]

    def _aggregate_message(self, table: str, message: str, file_map: _FileMap, columns: list[str],
                           pairs: list[tuple[str, str]]) -> None:
        """Per device and trip: duration, counts and aggregates of the message's configured signals.

        Partial aggregates (first and last t, and per signal count, sum, min, max) are computed per
        file for the files wholly inside a trip, and per trip for the other files' rows; they are then
        combined per trip. One DuckDB thread reads the files in list order, so the partial sums add up
        in a fixed order and a re-run gives the same bits."""
        bucketed, file_map = self._bucketed(message, file_map)
        whole, per_row = self._split_by_window(file_map)
        union = ", union_by_name = true"  # files may differ in columns; costs nothing measurable here
        partial_of = {"avg": "sum", "sum": "sum", "min": "min", "max": "max"}
        # every signal's sum is kept: it is NaN exactly when the group holds a NaN (see below)
        partials = sorted({(partial_of[a], s) for s, a in pairs} | {("sum", s) for s in columns})
        partial_names = ["first_us", "last_us", *(f"n:{s}" for s in columns), *(f"{p}:{s}" for p, s in partials)]

        def partial_exprs(value) -> str:
            exprs = [f"count({value(s)}) as {_ident('n:' + s)}" for s in columns]
            exprs += [f"{p}({value(s)}) as {_ident(p + ':' + s)}" for p, s in partials]
            return ", ".join(exprs)

        def columns_of(files: list[str]) -> set[str]:
            """Columns some of these files hold: read_parquet (union_by_name) knows no other."""
            return set().union(*(self.footers[f].columns for f in files))

        # pandas (the seed) treats NaN as missing: not counted, skipped by avg/max/min/sum
        def without_nan(held: set[str]):
            return lambda s: f"nullif(cast(r.{_ident(s)} as double), 'nan'::double)" if s in held else "null::double"

        def as_double(held: set[str]):
            return lambda s: f"cast(r.{_ident(s)} as double)" if s in held else "null::double"

        def at(name: str) -> str:
            """The list parameter's entry for the reading's file."""
            return f"list_extract(${name}, file_index::bigint + 1)"

        branches, params = [], {}
        if bucketed:
            # the identifier message's files: its per-bucket partials from find_windows, each bucket
            # wholly inside the trip window holding its first reading (or in none)
            table_of_buckets, file_indexes, held = bucketed
            exprs = [f"sum(b.{_ident('n:' + s)})::bigint" if s in held else "0::bigint" for s in columns]
            exprs += [f"{p}(b.{_ident(p + ':' + s)})" if s in held else "null::double" for p, s in partials]
            branches.append(f"""
                select b.dev, w.start_us, min(b.first_us) as first_us, max(b.last_us) as last_us,
                       {', '.join(f'{e} as {_ident(n)}' for e, n in zip(exprs, partial_names[2:], strict=True))}
                from {table_of_buckets} b
                join windows w on w.dev = b.dev and b.first_us between w.start_us and w.end_us
                where b.file_index in (select unnest($bucket_files))
                group by b.dev, w.start_us""")
            params["bucket_files"] = file_indexes
        if whole:
            # The file's trip, first and last t are known from its statistics: t is not even read, and
            # rows are grouped by the file (a constant per chunk). The NaN step costs a quarter of the
            # scan, so it runs only for files whose plain sum of a signal came out NaN: a sum is NaN
            # exactly when a NaN went in (or +inf met -inf; that file is redone too).
            self.con.execute(f"""
                create or replace temp table whole_partials as
                select r.file_index, {partial_exprs(as_double(columns_of(whole.files)))}
                from read_parquet($files{union}) r group by r.file_index
            """, {"files": whole.files})
            nan_check = " or ".join(f"isnan({_ident('sum:' + s)})" for s in columns) or "false"
            with_nan = [i for (i,) in self.con.execute(
                f"select file_index from whole_partials where {nan_check} order by file_index").fetchall()]
            if with_nan:
                nan_held = columns_of([whole.files[i] for i in with_nan])
                self.con.execute("delete from whole_partials where file_index in (select unnest($ids))",
                                 {"ids": with_nan})
                self.con.execute(f"""
                    insert into whole_partials
                    select list_extract($ids, r.file_index::bigint + 1), {partial_exprs(without_nan(nan_held))}
                    from read_parquet($files{union}) r group by r.file_index
                """, {"ids": with_nan, "files": [whole.files[i] for i in with_nan]})


            branches.append(f"""
                select {at('whole_devs')} as dev, {at('whole_starts')} as start_us,
                       {at('whole_first')} as first_us, {at('whole_last')} as last_us,
                       {', '.join(_ident(n) for n in partial_names[2:])}
                from whole_partials""")
            params |= {"whole_devs": whole.devs, "whole_starts": whole.starts, "whole_first": whole.first_us,
                       "whole_last": whole.last_us}
        if per_row:
            # Each reading finds its trip among the few windows its file overlaps (by the file's t
            # statistics; every window of the device when it has none): a CASE over list parameters
            # indexed by the file. Windows do not overlap, so at most one branch matches.
            candidates = [self._windows_of(file, dev) for file, dev in zip(per_row.files, per_row.devs, strict=True)]
            cases = []
            for k in range(max(len(c) for c in candidates)):
                params[f"row_start_{k}"] = [c[k][0] if k < len(c) else None for c in candidates]
                params[f"row_end_{k}"] = [c[k][1] if k < len(c) else None for c in candidates]
                cases.append(f"when t_us between {at(f'row_start_{k}')} and {at(f'row_end_{k}')} then {at(f'row_start_{k}')}")
            held = columns_of(per_row.files)
            branches.append(f"""
                select list_extract($row_devs, file_index::bigint + 1) as dev, * exclude (file_index)
                from (select file_index, start_us, min(t_us) as first_us, max(t_us) as last_us,
                             {partial_exprs(_ident)}
                      from (select file_index, t_us, case {' '.join(cases)} end as start_us{''.join(', ' + _ident(s) for s in columns)}
                            from (select r.file_index, epoch_us(r.t) as t_us{''.join(f', {without_nan(held)(s)} as {_ident(s)}' for s in columns)}
                                  from read_parquet($row_files{union}) r where r.t is not null))
                      where start_us is not null
                      group by file_index, start_us)""")
            params |= {"row_files": per_row.files, "row_devs": per_row.devs}
        if not branches:
            self.con.execute(f"create or replace temp table {table} as select null::integer as dev,"
                             " null::bigint as start_us, null::bigint as duration_us limit 0")
            return
        combined = [f"sum({_ident('n:' + s)})::bigint as {_ident('n:' + s)}" for s in columns]
        for s, a in pairs:
            part = _ident(partial_of[a] + ":" + s)
            if a == "avg":
                combined.append(f"case when sum({_ident('n:' + s)}) > 0"
                                f" then sum({part}) / sum({_ident('n:' + s)}) end as {_ident(a + ':' + s)}")
            else:
                combined.append(f"{partial_of[a]}({part}) as {_ident(a + ':' + s)}")
        self.con.execute(f"""
            create or replace temp table {table} as
            select dev, start_us, max(last_us) - min(first_us) as duration_us{''.join(', ' + e for e in combined)}
            from ({" union all ".join(branches)}) p
            group by dev, start_us
        """, params)

    def aggregate(self) -> int:
        """Aggregate every configured message over the windows into the temp table ``result``, rows
        in the seed's order; returns the number of rows."""
        with_trips = {self.devices[d] for d in self._windows_by_dev or {}}
        # message -> clusters (with their aggregation entries) that use it
        messages: dict[str, list] = {}
        for cluster in self.config.clusters:
            if not any(d in with_trips for d in cluster.devices):
                continue
            for index, agg in enumerate(cluster.aggregations):
                messages.setdefault(agg.message, []).append((cluster, index, agg))
        offsets = (0, 1) if self.options.cross_midnight else (0,)
        # device strings and each select's devices are list parameters (no temp tables to join)
        selects, params = [], {"device": self.devices}
        for m_index, (message, uses) in enumerate(messages.items()):
            cluster_names = {c.name for c, _, _ in uses}
            devices = [d for d in self.devices if d in with_trips and self.config.cluster_of(d).name in cluster_names]
            file_map = self._files(devices, message, offsets)
            if not file_map:
                continue
            wanted = {s for _, _, agg in uses for s in agg.signals} | {"t"}
            # the identifier's files need no t statistics (their partials come from find_windows)
            present = self._columns_present(file_map, wanted, t_stats=message not in self._bucket_scans)
            file_map = self._usable(file_map, present, message)
            if not file_map:
                continue
            usable = set(file_map.devs)
            columns = sorted(set().union(*(present[dev] for dev in usable)) - {"t"})
            pairs = sorted({(s, agg.aggregation) for _, _, agg in uses for s in agg.signals if s in columns})
            table = f"agg_{m_index}"
            self._aggregate_message(table, message, file_map, columns, pairs)
            for cluster, agg_index, agg in uses:
                for sig_index, signal in enumerate(agg.signals):
                    # the seed writes rows for a device's windows only if its files hold the signal
                    devs = sorted(dev for dev in usable if signal in present[dev]
                                  and self.config.cluster_of(self.devices[dev]).name == cluster.name)
                    if not devs:
                        continue
                    value = f"g.{_ident(agg.aggregation + ':' + signal)}"
                    if agg.aggregation == "sum":  # pandas: the sum of no values is 0
                        value = f"coalesce({value}, 0)"
                    params[f"devs_{len(selects)}"] = devs
                    selects.append(f"""
                        select list_extract($device, w.dev + 1) as "DeviceID", {_lit(message)} as "Message",
                               {_lit(signal)} as "Signal",
                               {_lit(agg.aggregation)} as "Aggregation", cast({value} as double) as "Value",
                               coalesce(g.{_ident('n:' + signal)}, 0)::bigint as "Count",
                               g.duration_us / 1e6 as "Duration",
                               w.start_us // 1000000 as "TripStart", w.end_us // 1000000 as "TripEnd",
                               list_extract($device, w.dev + 1) || '_' || (w.start_us // 1000000)::varchar as "TripID",
                               {_lit(cluster.name)} as "Cluster",
                               w.dev, w.start_us, {agg_index} as agg_index, {sig_index} as sig_index
                        from windows w
                        left join {table} g on g.dev = w.dev and g.start_us = w.start_us
                        where list_contains($devs_{len(selects)}, w.dev)""")
        if not selects:
            self.con.execute(f"create temp table result as {_EMPTY_RESULT}")
            return 0
        return self.con.execute(
            "create temp table result as select * exclude (dev, start_us, agg_index, sig_index) from ("
            + " union all ".join(selects) + ") order by dev, start_us, agg_index, sig_index", params).fetchall()[0][0]


_EMPTY_RESULT = ("select " + ", ".join(
    f"null::{t} as {_ident(c)}" for c, t in zip(COLUMNS, (
        "varchar", "varchar", "varchar", "varchar", "double", "bigint", "double", "bigint", "bigint",
        "varchar", "varchar"), strict=True)) + " limit 0")


class _DaySummary:
    """A day's summary rows as the DuckDB table ``result`` of ``con`` (closed with the object)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, rows: int, trips: int, cleanup=None):
        self.con, self.rows, self.trips, self._cleanup = con, rows, trips, cleanup

    def arrow(self) -> pa.Table:
        return self.con.sql("select * from result").to_arrow_table().cast(output_schema())

    def close(self) -> None:
        self.con.close()
        if self._cleanup:
            self._cleanup()


def _summarise_slice(lake: Lake, config: TripConfig, day: date, devices: list[str], options: Options,
                     con: duckdb.DuckDBPyConnection | None = None) -> _DayRun:
    run = _DayRun(lake, config, day, devices, options, con)
    try:
        run.trips = run.find_windows()
        if run.trips:
            run.rows = run.aggregate()
        else:
            run.con.execute(f"create temp table result as {_EMPTY_RESULT}")
            run.rows = 0
        return run
    except BaseException:
        run.close()
        raise


def _summarise(lake: Lake, config: TripConfig, day: date, devices: list[str] | None,
               options: Options | None) -> _DaySummary:
    """Summarise the day: slices of ``options.slice_devices`` devices over ``options.threads`` workers.

    Each slice (contiguous in configured order) runs in its own single-threaded DuckDB; DuckDB releases
    the GIL while a query runs, so the workers use all cores. Several threads inside one DuckDB would
    add partial sums in a different order each run. The slicing does not depend on the thread count,
    so neither does any bit of the output. (Slicing the same devices differently, as the DAG's shards
    may, can change the plan DuckDB picks and with it the last bit of a sum: rel. 1e-15.)
    The slices' results are appended to one table in device order.
    """
    options = options or Options()
    wanted = set(devices) if devices is not None else None
    selected = [d for d in config.devices if wanted is None or d in wanted]
    if wanted is not None and (unknown := wanted - set(config.devices)):
        log.warning("devices not in the configuration, ignored: %s", ", ".join(sorted(unknown)))
    slices = options.slices(selected)
    workers = options.worker_count(len(slices))
    if len(slices) == 1:
        run = _summarise_slice(lake, config, day, selected, options)
        summary = _DaySummary(run.con, run.rows, run.trips)
    else:
        # One DuckDB instance, one single-threaded connection per slice: the slices share the instance's
        # memory and parsed footers (a DuckDB instance per slice cost about 0.02 CPU s more each).
        database = lake.duckdb(threads=1)
        sessions = [lake.duckdb_session(database) for _ in slices]

        def summarise_into_table(index: int) -> tuple[int, int]:
            """(trips, rows) of one slice; its rows go to the shared table slice_<index>."""
            run = _summarise_slice(lake, config, day, slices[index], options, sessions[index])
            try:
                run.con.execute(f"create table slice_{index} as select * from result")
                return run.trips, run.rows
            finally:
                run.close()

        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trips") as pool:
                done = list(pool.map(summarise_into_table, range(len(slices))))
            # appended in slice order, i.e. in configured-device order; one thread reads them back so
            database.execute(f"create temp table result as {_EMPTY_RESULT}")
            for index in range(len(slices)):
                database.execute(f"insert into result select * from slice_{index}")
                database.execute(f"drop table slice_{index}")
        except BaseException:
            database.close()
            raise
        summary = _DaySummary(database, sum(rows for _, rows in done), sum(trips for trips, _ in done))
    log.info("%s: %d devices, %d trips, %d summary rows (%d workers)", day, len(selected), summary.trips,
             summary.rows, workers)
    return summary


def summarise_day(lake: Lake, config: TripConfig, day: date, devices: list[str] | None = None,
                  options: Options | None = None) -> pa.Table:
    """The trip summary rows of one day (optionally only some devices), in the seed's row order."""
    summary = _summarise(lake, config, day, devices, options)
    try:
        return summary.arrow()
    finally:
        summary.close()


def write_day(lake: Lake, day: date, table: pa.Table) -> str | None:
    """Replace the day's summary file atomically; a day without trips leaves no file (like the seed)."""
    relpath = lake.output_relpath(day)
    if table.num_rows == 0:
        if lake.delete(relpath):
            log.info("%s: no trips; removed the previous summary %s", day, relpath)
        return None
    return lake.write_atomic(table, relpath)


def _write_summary(lake: Lake, day: date, summary: _DaySummary) -> str | None:
    """write_day for a summary still in DuckDB: a local lake is written by DuckDB itself (no pyarrow)."""
    relpath = lake.output_relpath(day)
    if summary.rows == 0:
        if lake.delete(relpath):
            log.info("%s: no trips; removed the previous summary %s", day, relpath)
        return None
    return lake.write_query_atomic(summary.con, "select * from result", relpath)


def iter_days(start: date, end: date):
    for n in range((end - start).days + 1):
        yield start + timedelta(days=n)


def run_days(lake: Lake, config: TripConfig, start: date, end: date | None = None,
             options: Options | None = None, progress: bool = False) -> list[tuple[date, int, str | None]]:
    """Summarise every day from start to end (inclusive); returns (day, rows, output path) per day."""
    end = end or start
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    days = list(iter_days(start, end))
    if progress:
        from tqdm import tqdm

        days = tqdm(days, desc="trip summary", unit="day")
    results = []
    for day in days:
        summary = _summarise(lake, config, day, None, options)
        try:
            results.append((day, summary.rows, _write_summary(lake, day, summary)))
        finally:
            summary.close()
    return results


# -- sharding (the DAG spreads devices over workers) -------------------------------------------
STAGING_DIR = ("aggregations", "_staging", "tripsummary")


def shard_devices(config: TripConfig, shard_size: int) -> list[list[str]]:
    """Configured devices in file order, cut into shards of at most shard_size devices."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    devices = config.devices
    return [devices[i:i + shard_size] for i in range(0, len(devices), shard_size)]


def staging_relpath(day: date, run_key: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_key)
    return "/".join((*STAGING_DIR, day.strftime("%Y%m%d"), safe))


def write_part(lake: Lake, day: date, run_key: str, shard_index: int, table: pa.Table) -> str:
    """A shard's rows as a part file (written even when empty, so the merge sees every shard)."""
    return lake.write_atomic(table, f"{staging_relpath(day, run_key)}/part-{shard_index:05d}.parquet")


def merge_parts(lake: Lake, day: date, run_key: str, shard_count: int) -> tuple[int, str | None]:
    """Concatenate the shards' parts (shards follow the configured device order) into the day's file."""
    folder = staging_relpath(day, run_key)
    parts = [f"{folder}/part-{i:05d}.parquet" for i in range(shard_count)]
    missing = [p for p in parts if not lake.exists(p)]
    if missing:
        raise FileNotFoundError(f"{day}: {len(missing)} of {shard_count} shard parts missing, e.g. {missing[0]}")
    import pyarrow as pa

    schema = output_schema()
    table = pa.concat_tables([lake.read_table(p).cast(schema) for p in parts]) if parts else schema.empty_table()
    path = write_day(lake, day, table)
    lake.delete_dir(folder)
    return table.num_rows, path
