"""The Great Expectations checkpoint over a raw increment: results stored, bad rows quarantined,
no exception, idempotent."""

from __future__ import annotations

from dbt_support import fresh_warehouse, load_scenario

from iot_core.connections import pg_connect
from quality import validate_raw_increment


def test_checkpoint_stores_results_and_quarantines_without_halting(wh):
    fresh_warehouse(wh)
    load_scenario(wh)
    summary = validate_raw_increment(settings=wh)
    assert summary["air_quality"]["success"] is False          # the scenario has bad payloads
    assert summary["users"]["success"] is True
    assert summary["heart_rates__metrics"]["quarantined_rows"] == 1   # the 400 bpm sample

    with pg_connect("superuser", settings=wh) as conn:
        failed = dict(conn.execute(
            "select column_name || ':' || expectation, unexpected_count from ops.data_quality_results "
            "where table_name = 'air_quality' and not success").fetchall())
        quarantined = conn.execute("select row_key, reason from ops.dq_quarantine where table_name = 'air_quality' "
                                   "order by 1, 2").fetchall()
        results_before = conn.execute("select count(*) from ops.data_quality_results").fetchone()[0]
    assert failed["iaq:expect_column_values_to_not_be_null"] == 1            # NaN
    assert failed["humidity:expect_column_values_to_be_between"] == 1       # 150 %RH
    assert failed["ts:expect_column_values_to_match_regex"] == 1            # "yesterday at noon"
    assert ("aq:aq2:yesterday at noon", "expect_column_values_to_match_regex(ts)") in quarantined

    again = validate_raw_increment(settings=wh)
    assert again == summary
    with pg_connect("superuser", settings=wh) as conn:
        assert conn.execute("select count(*) from ops.data_quality_results").fetchone()[0] == results_before
        assert conn.execute("select count(*) from ops.dq_quarantine where table_name = 'air_quality'").fetchone()[0] \
            == len(quarantined)
