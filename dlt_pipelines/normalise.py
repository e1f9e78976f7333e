"""raw.air_quality rows loaded before the extract stored ``ts_utc``: their ``ts`` parsed once, in Python.

Stage reads the UTC time from ``raw.air_quality.ts_utc`` (there is no timestamp parser in SQL).
Rows loaded by an earlier version of the extract have the column empty (dlt adds it with nulls):
:func:`fill_missing_ts_utc` parses their ``ts`` with the same parser as the extract
(``iot_core.timestamps``) and writes the result, in batches. A partial index on the rows still
missing it keeps the check free once they are done. A ``ts`` it cannot parse stays null and
stage rejects the row (``unparseable_ts``), as it would a new one.
"""

from __future__ import annotations

import logging

from iot_core.connections import pg_connect
from iot_core.timestamps import TimestampError, to_utc

log = logging.getLogger(__name__)

BATCH = 10_000


def fill_missing_ts_utc(naive_zone=None) -> int:
    """Fill ``ts_utc`` of the rows that lack it; returns how many were filled."""
    filled = 0
    with pg_connect("loader") as conn:
        has_column = conn.execute(
            "select 1 from information_schema.columns where table_schema = 'raw' and table_name = 'air_quality' "
            "and column_name = 'ts_utc'").fetchone()
        if not has_column:
            return 0
        conn.execute("create index if not exists air_quality_ts_utc_missing on raw.air_quality (_id) "
                     "where ts_utc is null and ts is not null")
        conn.commit()
        after = ""
        while True:
            rows = conn.execute("select _id, ts from raw.air_quality where ts_utc is null and ts is not null "
                                "and _id > %s order by _id limit %s", (after, BATCH)).fetchall()
            if not rows:
                break
            after = rows[-1][0]
            ids, times = [], []
            for _id, ts in rows:
                try:
                    times.append(to_utc(ts, naive_zone=naive_zone))
                    ids.append(_id)
                except TimestampError:
                    continue
            if ids:
                conn.execute("update raw.air_quality as r set ts_utc = v.ts_utc "
                             "from unnest(%s::text[], %s::timestamptz[]) as v(_id, ts_utc) where r._id = v._id",
                             (ids, times))
                conn.commit()
                filled += len(ids)
    if filled:
        log.info("filled ts_utc of %d air-quality rows loaded before the extract stored it", filled)
    return filled
