"""Fixtures of the alert tests: a warehouse database of their own whose stage tables were built by
dbt (the real models) from a small device registry, and a clean slate of alert tables per test."""

from __future__ import annotations

import pytest
from alerts_support import ALERTS_DB, FLEET, load_raw_fixture

from iot_cli.localstack.postgres import INIT_SQL_DIR, init_sql_variables
from iot_core.connections import pg_connect


@pytest.fixture(scope="session")
def alerts_wh(services, pg_cluster):
    """Settings of the alert tests' warehouse: same schemas, roles and grants as the real one;
    raw holds the registry of :data:`FLEET`; ``dbt build`` of the stage models ran once."""
    from dbt_project.runner import build
    from ml.schema import ensure_schema as ensure_ml_schema

    settings = services.model_copy(update={"warehouse_db": ALERTS_DB, "alert_webhooks": ""})
    with pg_connect("superuser", database="postgres", autocommit=True, settings=services) as conn:
        conn.execute(f"drop database if exists {ALERTS_DB} with (force)")
        conn.execute(f"create database {ALERTS_DB}")
        conn.execute(f"revoke create, temporary on database {ALERTS_DB} from public")
        conn.execute(f"grant connect on database {ALERTS_DB} to {settings.loader_user}, {settings.transformer_user}, "
                     f"{settings.analyst_user}, {settings.api_user}")
        conn.execute(f"grant temporary on database {ALERTS_DB} to {settings.transformer_user}")
    pg_cluster.psql_file(INIT_SQL_DIR / "02_warehouse_schemas.sql", ALERTS_DB, init_sql_variables(settings))
    raw = load_raw_fixture()
    with pg_connect("loader", settings=settings) as conn:
        raw.create_raw_tables(conn, drop=True)
        with conn.cursor() as cur:
            for d in FLEET:
                cur.execute("insert into raw.devices (_id, device_id, kind, building, floor, room, manufacturer_name,"
                            " model, installed_at, active, history, _ingested_at, _dlt_load_id)"
                            " values (%s, %s, %s, %s, %s, %s, 'Acme', 'm1', '2026-01-01', %s, '[]', now(), 'fleet')",
                            (d.id, d.id, d.kind, d.building, d.floor, d.room, d.active))
        conn.commit()
    with pg_connect("transformer", settings=settings) as conn:
        ensure_ml_schema(conn)
    build(["tag:stage"], settings=settings)
    return settings


@pytest.fixture
def wh(alerts_wh):
    """A clean slate for one test: no readings, predictions or alert bookkeeping."""
    from alerts.schema import ensure_schema

    with pg_connect("transformer", settings=alerts_wh) as conn:
        ensure_schema(conn, alerts_wh)
        conn.execute("truncate ops.alert_events, ops.alert_notifications, ops.alert_state, ops.alert_progress,"
                     " ops.alert_rules, ops.alert_runs, stage.stg_sensor_readings, ml.predictions")
        conn.commit()
    return alerts_wh
