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
    assert failed["iaq:expect_column_values_to_be_between"] == 1            # NaN (above every number in SQL)
    assert failed["humidity:expect_column_values_to_be_between"] == 1       # 150 %RH
    assert failed["ts_utc:expect_column_values_to_not_be_null"] == 1        # "yesterday at noon": no UTC time
    assert ("aq:aq2:yesterday at noon", "expect_column_values_to_not_be_null(ts_utc)") in quarantined

    again = validate_raw_increment(settings=wh)
    assert again == summary
    with pg_connect("superuser", settings=wh) as conn:
        assert conn.execute("select count(*) from ops.data_quality_results").fetchone()[0] == results_before
        assert conn.execute("select count(*) from ops.dq_quarantine where table_name = 'air_quality'").fetchone()[0] \
            == len(quarantined)


def test_checkpoint_quarantines_exactly_what_gx_counts_and_keeps_progress_bars_out_of_stderr(wh, capfd):
    """The rows copied to ops.dq_quarantine are the ones GX counted as unexpected (same condition,
    in SQL), and GX's tqdm bars do not reach stderr (Airflow logs stderr as errors)."""
    fresh_warehouse(wh)
    load_scenario(wh)
    capfd.readouterr()
    validate_raw_increment(settings=wh)
    assert "Calculating Metrics" not in capfd.readouterr().err
    with pg_connect("superuser", settings=wh) as conn:
        counted = conn.execute(
            "select table_name, expectation, column_name, unexpected_count from ops.data_quality_results "
            "where not success and expectation <> 'expect_column_values_to_be_unique'").fetchall()
        for table, expectation, column, unexpected in counted:
            copied = conn.execute("select count(*) from ops.dq_quarantine where table_name = %s and expectation = %s "
                                  "and column_name = %s", (table, expectation, column)).fetchone()[0]
            assert copied == unexpected, (table, expectation, column)
    assert counted


def test_the_suite_is_the_data_contract():
    from iot_core import contract
    from quality.checkpoint import SUITES

    between = {(t, c.column): (c.args["min_value"], c.args["max_value"])
               for t, (_, checks) in SUITES.items() for c in checks if c.kind == "between"}
    for m in contract.MEASURES:
        assert between[("air_quality", m.name)] == (m.minimum, m.maximum)
    assert between[("heart_rates__metrics", "bpm")] == contract.field_at("heart_rates.metrics.bpm").bounds
    assert between[("users", "age")] == (0, contract.MAX_AGE_YEARS)


def test_checkpoint_leaves_no_increment_views_behind(wh):
    fresh_warehouse(wh)
    load_scenario(wh)
    validate_raw_increment(settings=wh)
    with pg_connect("superuser", settings=wh) as conn:
        assert conn.execute("select count(*) from pg_views where viewname like 'dq_increment_%'").fetchone()[0] == 0
