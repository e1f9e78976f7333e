"""agg.forecast_accuracy and agg.forecast_regret on a fresh install: `iot transform` runs before the
first forecast cycle has created the ml tables, and must not fail because of it."""

from __future__ import annotations

from iot_core.connections import pg_connect


def test_forecast_accuracy_and_regret_build_empty_before_the_first_forecast(services):
    from dbt_project.runner import build
    from ml import schema

    try:
        with pg_connect("transformer", autocommit=True) as conn:
            for table in ("ml.predictions", "ml.arm_scores", "ml.model_selections", "agg.forecast_accuracy",
                          "agg.forecast_regret"):
                conn.execute(f"drop table if exists {table} cascade")
        build(["forecast_accuracy", "forecast_regret"])
        with pg_connect("transformer") as conn:
            assert conn.execute("select count(*) from agg.forecast_accuracy").fetchone()[0] == 0
            assert conn.execute("select count(*) from agg.forecast_regret").fetchone()[0] == 0
            assert conn.execute("select to_regclass('ml.predictions')").fetchone()[0] is None
    finally:
        schema._created.clear()   # the tables are gone: the next cycle must create them again
