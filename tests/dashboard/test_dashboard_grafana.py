"""Grafana's seed-000 panel and the Device page: one query definition, the same rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from dashboard import grafana
from dashboard.queries import DEVICE_IAQ_VS_FORECAST, Warehouse, analyst_engine
from iot_core.connections import pg_connect


def test_the_grafana_panel_is_written_from_the_dashboard_query():
    assert grafana.main(["--check"]) == 0, "run: python -m dashboard.grafana"
    panel = grafana.panel_sql(json.loads(grafana.DASHBOARD_FILE.read_text()))
    assert ":device" not in panel and ":start" not in panel and "$__timeFrom()" in panel


def test_grafana_and_the_device_page_return_the_same_rows(filled_warehouse):
    settings, _ = filled_warehouse
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(hours=2)
    page = Warehouse(analyst_engine(settings)).run(DEVICE_IAQ_VS_FORECAST, device="aq-0003", start=start, end=end)
    assert page.ok and page.frame["IAQ 15 min"].notna().sum() > 60

    # what Grafana sends for the same range, as its datasource's role (iot-warehouse-api: the API role)
    sql = grafana.panel_sql(json.loads(grafana.DASHBOARD_FILE.read_text()))
    for macro, value in {"$__timeFrom()": f"'{start.isoformat()}'::timestamptz",
                         "$__timeTo()": f"'{end.isoformat()}'::timestamptz", "$device": "aq-0003"}.items():
        sql = sql.replace(macro, value)
    with pg_connect("api", settings=settings) as conn:
        cur = conn.execute(sql)
        rows = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    rows["time"] = pd.to_datetime(rows["time"], utc=True)
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), page.frame.reset_index(drop=True),
                                  check_dtype=False)


def test_the_panel_averages_minutes_as_the_minutely_view_does(filled_warehouse):
    """The panel computes agg.agg_sensor_readings_minutely's average from stage with the range
    applied first (for the index); it must give the view's rows."""
    settings, _ = filled_warehouse
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(hours=3)
    page = Warehouse(analyst_engine(settings)).run(DEVICE_IAQ_VS_FORECAST, device="aq-0002", start=start, end=end)
    actual = page.frame.dropna(subset=["IAQ"])[["time", "IAQ"]].reset_index(drop=True)
    with pg_connect("analyst", settings=settings) as conn:
        cur = conn.execute("select time, value from agg.agg_sensor_readings_minutely where device_id = 'aq-0002' "
                           "and measure_name = 'iaq' and time between %s and %s order by time", (start, end))
        view = pd.DataFrame(cur.fetchall(), columns=["time", "IAQ"])
    view["time"] = pd.to_datetime(view["time"], utc=True)
    assert len(actual) > 100
    pd.testing.assert_frame_equal(actual, view, check_dtype=False)
