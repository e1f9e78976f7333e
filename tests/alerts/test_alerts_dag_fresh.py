"""iot_alerts on a fresh platform, before the first stage build: skipped with the reason, not failed."""

from __future__ import annotations


def test_before_the_first_stage_build_the_run_is_skipped(platform, isolated_warehouse, load_dag):
    run = load_dag("iot_alerts").test()
    (ti,) = run.get_task_instances()
    assert ti.state == "skipped", ti.state
    from iot_core.connections import pg_connect

    with pg_connect("transformer") as conn:   # nothing was judged, and nothing was recorded as a failure
        assert conn.execute("select count(*) from ops.alert_runs").fetchone()[0] == 0
        failures = conn.execute("select to_regclass('ops.task_failures')").fetchone()[0]
        assert failures is None or conn.execute(
            "select count(*) from ops.task_failures where dag_id = 'iot_alerts'").fetchone()[0] == 0
