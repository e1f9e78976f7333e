"""Rows of raw.air_quality loaded before the extract stored ts_utc get it on the next extract,
parsed by the same parser (stage has none of its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factories as f

from dlt_pipelines import load_raw
from dlt_pipelines.normalise import fill_missing_ts_utc
from iot_core.connections import pg_connect


def test_rows_without_ts_utc_get_it_from_ts(fresh, raw):
    now = f.ms(datetime.now(UTC))
    fresh.devices.insert_one(f.device("aq-1", ingested_at=now))
    sent = {"aq:1": ("2026-11-01T10:00:00+02:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
            "aq:2": ("Sun, 01 Nov 2026 09:00:00 GMT", datetime(2026, 11, 1, 9, tzinfo=UTC)),
            "aq:3": ("1793527200", datetime(2026, 11, 1, 10, tzinfo=UTC))}
    fresh.air_quality.insert_many([{**f.air_quality("aq-1", f.BASE, now), "_id": _id, "ts": ts}
                                   for _id, (ts, _) in sent.items()])
    load_raw()
    assert dict(raw("select _id, ts_utc from raw.air_quality")) == {k: v for k, (_, v) in sent.items()}
    # as an older extract left them: no ts_utc, and one ts nobody can read
    with pg_connect("loader") as conn:
        conn.execute("update raw.air_quality set ts_utc = null")
        conn.execute("insert into raw.air_quality (_id, devid, ts, _dlt_load_id) values ('aq:legacy', 'aq-1', 'soon', 'x')")
    assert fill_missing_ts_utc() == 3
    got = dict(raw("select _id, ts_utc from raw.air_quality"))
    assert got == {**{k: v for k, (_, v) in sent.items()}, "aq:legacy": None}
    assert fill_missing_ts_utc() == 0
    # the extract does it on its own
    with pg_connect("loader") as conn:
        conn.execute("update raw.air_quality set ts_utc = null where _id = 'aq:2'")
    fresh.air_quality.insert_one(f.air_quality("aq-1", f.BASE + timedelta(minutes=5), f.ms(datetime.now(UTC))))
    load_raw()
    assert raw("select ts_utc from raw.air_quality where _id = 'aq:2'") == [(sent["aq:2"][1],)]
