"""stage.stg_rejects reads each source from its own watermark, taken from what the run read
(macros/source_window.sql). Before, one watermark over five raw tables was taken after the build:
a reject in a slower source stamped before the newest row of another source was never read."""

from __future__ import annotations

from datetime import timedelta

from dbt_support import FIRST_LOAD_AT, fresh_warehouse, load_scenario
from raw_fixture import RawWriter

from dbt_project.runner import build
from iot_core.connections import pg_connect


def q(settings, sql, *params):
    with pg_connect("superuser", settings=settings) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_late_reject_of_one_source_is_read_although_another_source_is_ahead(wh):
    fresh_warehouse(wh)
    load_scenario(wh)
    with pg_connect("loader", settings=wh) as conn:
        # air quality moves on: its newest row is 5 hours after the scenario's load
        RawWriter(conn, "load-aq").air_quality([("aq1", "2026-11-20T11:30:00Z", [1, 20, 40, 100, 0.4, 500, 2])],
                                               FIRST_LOAD_AT + timedelta(hours=5))
    build(select=["+stg_rejects"], settings=wh)

    # the extract quarantines a document stamped 2 hours after the scenario (older than the
    # newest air-quality row by more than the look-back)
    with pg_connect("loader", settings=wh) as conn:
        RawWriter(conn, "load-q").quarantine("heart_rates", "hr:late:1", "out_of_range: bpm", {"bpm": 900},
                                             FIRST_LOAD_AT + timedelta(hours=2))
    build(select=["stg_rejects"], settings=wh)
    assert q(wh, "select reject_reason from stage.stg_rejects where source_id = 'heart_rates:hr:late:1'") == [
        ("quarantined_by_extract: out_of_range: bpm",)]
    marks = dict(q(wh, "select source, read_to from ops.source_watermarks where model = 'stg_rejects'"))
    assert marks["quarantine"] == FIRST_LOAD_AT + timedelta(hours=2)   # what the run read of that source
    assert marks["air_quality"] == FIRST_LOAD_AT + timedelta(hours=5)
    assert q(wh, "select count(*) from ops.source_watermarks_pending where model = 'stg_rejects'") == [(0,)]


def test_a_failed_build_records_no_watermark(wh):
    """The bound is committed with the model: a build that fails moves no watermark."""
    fresh_warehouse(wh)
    load_scenario(wh)
    build(select=["+stg_rejects"], settings=wh)
    before = q(wh, "select source, read_to from ops.source_watermarks where model = 'stg_rejects' order by 1")
    with pg_connect("loader", settings=wh) as conn:
        RawWriter(conn, "load-q2").quarantine("steps", "st:late:1", "out_of_range: steps", {"steps": -1},
                                              FIRST_LOAD_AT + timedelta(hours=9))
    with pg_connect("superuser", settings=wh) as conn:  # make the merge fail: a column it cannot fill
        conn.execute("alter table stage.stg_rejects add column must_be_set text not null default 'x'")
        conn.execute("alter table stage.stg_rejects alter column must_be_set drop default")
    try:
        build(select=["stg_rejects"], settings=wh)
    except Exception:  # noqa: BLE001 - the failure is the point
        pass
    else:
        raise AssertionError("the sabotaged build succeeded")
    after = q(wh, "select source, read_to from ops.source_watermarks where model = 'stg_rejects' order by 1")
    assert after == before


def test_rejects_build_when_only_some_sources_were_ever_staged(wh):
    """The stage transform builds the models of the raw tables an extract announced: a deployment
    with air-quality sensors only has never built the wearable models stg_rejects compares
    re-sends against. It builds, and those comparisons start with the models' first build."""
    fresh_warehouse(wh)
    load_scenario(wh)
    build(select=["+dim_users", "+dim_devices"], settings=wh)  # the registries were announced before
    build(select=["source:raw.air_quality*+,tag:stage"], settings=wh)
    assert q(wh, "select to_regclass('stage.stg_heart_rate')") == [(None,)]
    assert q(wh, "select count(*) from stage.stg_rejects where source_table = 'raw.air_quality'")[0][0] > 0
