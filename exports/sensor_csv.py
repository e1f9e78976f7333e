"""Wide CSV exports of ``stage.stg_sensor_readings`` into an export directory.

Layout under the export root (seed 000's silver data lake, ``brewai/sensors/...``):

* ``sensors/<yyyy-mm-dd>/raw.csv``: one day (a calendar day in ``DAY_TIMEZONE``);
* ``sensors/export/<yyyymmdd>.<yyyymmdd>/raw.csv``: an inclusive range of days;
* ``sensors/latest/<N>-days/raw.csv``: the N days ending with a given day.

Every file has the header ``time,deviceId,iaq,temperature,...`` and rows ordered by device and
time. Files are replaced atomically (written beside, then renamed), so a reader never sees half
a file and re-running an export for the same days rewrites the same bytes. A day without
readings still gets a file with the header only (and a warning in the log): the export ran, the
warehouse had nothing, and a consumer can tell that apart from an export that never ran.

Formula injection: a spreadsheet opening the file runs a cell that starts with ``=``, ``+``,
``-``, ``@`` (or a tab or carriage return before one of them) as a formula, so a device id like
``=HYPERLINK(...)`` would. Such *text* cells are written with a leading apostrophe (the OWASP
advice: the spreadsheet shows the text, and the apostrophe marks it as text). Only text cells are
touched: the measures are numbers (PostgreSQL doubles written by ``repr``), so ``-3.5`` stays
``-3.5``, and the time column is ISO 8601 from PostgreSQL and never starts with one of them.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from iot_core.connections import pg_connect
from iot_core.contract import MEASURE_NAMES
from iot_core.settings import get_settings

log = logging.getLogger(__name__)

# column order of the device payload's `readings` (the data contract), and of the CSV
MEASURES = MEASURE_NAMES
HEADER = ("time", "deviceId", *MEASURES)
SOURCE_TABLE = "stage.stg_sensor_readings"
# the read-only role that may read stage (DESIGN §4); the export writes files, never the warehouse
EXPORT_ROLE = "api"
_CHUNK_BYTES = 1 << 16
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_FETCH_ROWS = 5_000

_PIVOT = ", ".join(f"max(value) filter (where measure_name = '{m}') as {m}" for m in MEASURES)
WIDE_READINGS_SQL = f"""
    select time, device_id, {_PIVOT}
    from {SOURCE_TABLE}
    where time >= %(start)s and time < %(end)s
      and (%(device)s::text is null or device_id = %(device)s)
    group by device_id, time
    order by device_id, time"""


def neutralise(cell: str) -> str:
    """A text cell as a spreadsheet shows it without running it (see the module docstring)."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


class WarehouseNotBuilt(RuntimeError):
    """The stage table the export reads has not been built yet."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    start: datetime
    end: datetime
    rows: int

    def as_dict(self) -> dict:
        return {"path": str(self.path), "start": self.start.isoformat(), "end": self.end.isoformat(),
                "rows": self.rows}


def csv_chunks(start: datetime, end: datetime, device: str | None = None,
               counter: list[int] | None = None) -> Iterator[str]:
    """The wide CSV of readings with ``start <= time < end``, as text chunks of about 64 kB.

    Streams through a server-side cursor, so memory stays flat whatever the range. When
    ``counter`` is given, its first element is set to the number of data rows written.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # Python 3.11's writer quotes a field holding LF (the line terminator) but not one holding a
    # lone CR, which a reader takes as a line break: such rows are written fully quoted
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(HEADER)
    rows = 0
    with pg_connect(EXPORT_ROLE) as conn, conn.cursor(name="sensor_csv_export") as cur:
        cur.itersize = _FETCH_ROWS
        try:
            cur.execute(WIDE_READINGS_SQL, {"start": start, "end": end, "device": device})
        except psycopg.errors.UndefinedTable as e:
            raise WarehouseNotBuilt(f"{SOURCE_TABLE} does not exist yet: run the extract and the stage "
                                    "transform (iot_raw_extract, iot_stage_transform) first") from e
        for record in cur:
            device = neutralise(record[1])
            (quoted if "\r" in device else writer).writerow([record[0].isoformat(), device, *record[2:]])
            rows += 1
            if buf.tell() > _CHUNK_BYTES:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    if counter is not None:
        counter[:] = [rows]
    yield buf.getvalue()


def day_window(first: date, last: date | None = None, tz: str | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the calendar days ``first``..``last`` (inclusive) in the time zone ``tz``."""
    zone = ZoneInfo(tz or get_settings().day_timezone)
    last = last or first
    if last < first:
        raise ValueError(f"the last day {last} is before the first day {first}")
    return (datetime.combine(first, time(0), zone), datetime.combine(last + timedelta(days=1), time(0), zone))


def export_root() -> Path:
    return Path(get_settings().export_dir or get_settings().local_dir / "exports")


def day_relpath(day: date) -> str:
    return f"sensors/{day:%Y-%m-%d}/raw.csv"


def range_relpath(first: date, last: date) -> str:
    return f"sensors/export/{first:%Y%m%d}.{last:%Y%m%d}/raw.csv"


def latest_relpath(days: int) -> str:
    return f"sensors/latest/{days}-days/raw.csv"


def write_csv(relpath: str, start: datetime, end: datetime, root: Path | None = None) -> ExportResult:
    """Write the readings of [start, end) to ``root/relpath``, replacing any earlier file atomically."""
    target = (root or export_root()) / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    counter = [0]
    try:
        with partial.open("w", encoding="utf-8", newline="") as f:
            for chunk in csv_chunks(start, end, counter=counter):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    if not counter[0]:
        log.warning("no readings in %s between %s and %s: %s has the header only",
                    SOURCE_TABLE, start.isoformat(), end.isoformat(), target)
    log.info("exported %d rows (%s .. %s) to %s", counter[0], start.isoformat(), end.isoformat(), target)
    return ExportResult(target, start, end, counter[0])


def export_day(day: date, root: Path | None = None) -> ExportResult:
    """``sensors/<yyyy-mm-dd>/raw.csv``: the readings of one calendar day."""
    return write_csv(day_relpath(day), *day_window(day), root=root)


def export_range(first: date, last: date, root: Path | None = None) -> ExportResult:
    """``sensors/export/<first>.<last>/raw.csv``: the readings of the days first..last (inclusive)."""
    return write_csv(range_relpath(first, last), *day_window(first, last), root=root)


def export_latest(days: int, last: date, root: Path | None = None) -> ExportResult:
    """``sensors/latest/<N>-days/raw.csv``: the ``days`` days ending with ``last`` (inclusive)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    return write_csv(latest_relpath(days), *day_window(last - timedelta(days=days - 1), last), root=root)
