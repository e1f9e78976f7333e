"""Fixtures of the warehouse-transform tests: an isolated warehouse database with the raw
tables of docs/contracts.md §2 filled by SQL (independent of the extract), and dbt runs on it."""

from __future__ import annotations

import os

import pytest

from iot_cli.localstack.postgres import init_sql_variables
from iot_core.connections import pg_connect

# cosmos would try to send usage metrics (no network here; each try waits for a DNS failure)
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")

from dbt_support import TEST_DB, fresh_warehouse, load_scenario  # noqa: F401


@pytest.fixture(scope="session")
def wh(services, pg_cluster):
    """Settings pointing at a warehouse database of its own (same schemas, roles and grants as
    the real one), so these tests neither see nor disturb other areas' raw data."""
    settings = services.model_copy(update={"warehouse_db": TEST_DB})
    variables = init_sql_variables(settings)
    with pg_connect("superuser", database="postgres", autocommit=True, settings=services) as conn:
        conn.execute(f"drop database if exists {TEST_DB} with (force)")
        conn.execute(f"create database {TEST_DB}")
        conn.execute(f"revoke create, temporary on database {TEST_DB} from public")
        conn.execute(f"grant connect on database {TEST_DB} to {settings.loader_user}, {settings.transformer_user}, "
                     f"{settings.analyst_user}, {settings.api_user}")
        conn.execute(f"grant temporary on database {TEST_DB} to {settings.transformer_user}")
    pg_cluster.apply_warehouse_sql(TEST_DB, variables)
    return settings


@pytest.fixture(scope="module")
def built(wh):
    """The scenario loaded into raw and the whole dbt project built once (models and tests)."""
    from dbt_project.runner import build

    fresh_warehouse(wh)
    load_scenario(wh)
    build(settings=wh)
    return wh
