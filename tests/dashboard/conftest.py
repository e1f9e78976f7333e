"""Warehouses for the dashboard tests: one built by the real dbt project and filled with a day of
generated data ending now, one straight after the init SQL (a platform that has never run)."""

from __future__ import annotations

import pytest

from iot_cli.localstack.postgres import init_sql_variables
from iot_core.connections import pg_connect


def _fresh_database(services, pg_cluster, name: str):
    settings = services.model_copy(update={"warehouse_db": name})
    with pg_connect("superuser", database="postgres", autocommit=True, settings=services) as conn:
        conn.execute(f"drop database if exists {name} with (force)")
        conn.execute(f"create database {name}")
        conn.execute(f"revoke create, temporary on database {name} from public")
        conn.execute(f"grant connect on database {name} to {settings.loader_user}, {settings.transformer_user}, "
                     f"{settings.analyst_user}, {settings.api_user}")
        conn.execute(f"grant temporary on database {name} to {settings.transformer_user}")
    pg_cluster.apply_warehouse_sql(name, init_sql_variables(settings))
    return settings


@pytest.fixture(scope="session")
def filled_warehouse(services, pg_cluster):
    from benchmarks.dashboard.warehouse import build_relations, fill

    settings = _fresh_database(services, pg_cluster, "dashboard_filled")
    build_relations(settings)
    counts = fill(settings, sensors=6, days=1.0, prediction_days=0.25, users=4)
    return settings, counts


@pytest.fixture(scope="session")
def empty_warehouse(services, pg_cluster):
    return _fresh_database(services, pg_cluster, "dashboard_empty")
