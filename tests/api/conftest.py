"""What the API tests share: the app with its lifespan running on a module's own warehouse, a
key, and the stage/ml tables the endpoints read, created as dbt and the forecast DAG create them
(docs/contracts.md §3-4)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from iot_core.connections import pg_connect


@pytest.fixture(scope="module")
def client(isolated_warehouse, mongo_server):
    from api.app import app

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def api_key(client, request):
    from api.keys import create_key

    return create_key(request.module.__name__.rsplit(".", 1)[-1])[1]


@pytest.fixture(scope="module")
def reading_tables(isolated_warehouse):
    """Empty ``stage.stg_sensor_readings`` and ``ml.predictions``; the test fills them."""
    with pg_connect("transformer") as conn:
        conn.execute("""create table stage.stg_sensor_readings (
            time timestamptz not null, device_id text not null, measure_name text not null,
            value double precision, primary key (device_id, measure_name, time))""")
        conn.execute("""create table ml.predictions (
            time timestamptz not null, device_id text not null, measure_name text not null,
            value double precision, model_name text, model_version text, issued_at timestamptz,
            primary key (device_id, time, measure_name))""")
        conn.commit()
    return isolated_warehouse
