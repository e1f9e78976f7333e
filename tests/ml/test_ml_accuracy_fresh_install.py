"""agg.forecast_accuracy on a fresh install: `iot transform` runs before the first forecast cycle
has created ml.predictions, and must not fail because of it."""

from __future__ import annotations

from iot_core.connections import pg_connect


def test_forecast_accuracy_builds_empty_before_the_first_forecast(services):
    from dbt_project.runner import build
    from ml import schema

    try:
        with pg_connect("transformer", autocommit=True) as conn:
            conn.execute("drop table if exists ml.predictions cascade")
            conn.execute("drop table if exists agg.forecast_accuracy")
        build(["forecast_accuracy"])
        with pg_connect("transformer") as conn:
            assert conn.execute("select count(*) from agg.forecast_accuracy").fetchone()[0] == 0
            assert conn.execute("select to_regclass('ml.predictions')").fetchone()[0] is None
    finally:
        schema._created.clear()   # the table is gone: the next cycle must create it again
