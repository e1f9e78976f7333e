"""Fuzzing the API from its own OpenAPI document (schemathesis, property-based; issue 17).

Every operation gets requests generated from the schema: valid ones, boundary values and
invalid ones (wrong types, missing parameters, out-of-range numbers, odd strings and bodies),
against the real app on real PostgreSQL and MongoDB-protocol servers, with a valid key. Checks:
no 5xx, every status code and media type documented, every JSON answer matching its documented
schema, and invalid input refused with a 4xx. Bounded: a fixed number of examples per operation
(FUZZ_EXAMPLES), no deadline, no example database.

Not checked: positive_data_acceptance, because the schema cannot say that ``to`` must not be
before ``from`` (a 400 documented for that) or that a PUT's device must exist.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from alerts.schema import ensure_schema as ensure_alert_tables
from iot_core.connections import pg_connect

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance, checks.negative_data_rejection]


@pytest.fixture(scope="module")
def api(reading_tables, mongo_server):
    """The app (lifespan started), a key, and a little of every table the endpoints read."""
    from api.app import app
    from api.keys import create_key

    with pg_connect("transformer") as conn:
        for minute in range(20):
            t = T0 + timedelta(minutes=minute)
            conn.execute("insert into stage.stg_sensor_readings values (%s, '0', 'iaq', %s)", (t, 100.0 + minute))
            conn.execute("insert into ml.predictions values (%s, '0', 'iaq~5', %s, 'ridge', '1', %s)",
                         (t, 100.0 + minute, t - timedelta(minutes=5)))
        ensure_alert_tables(conn)  # GET /alerts reads them (the first alert pass creates them)
    with TestClient(app):
        yield app, create_key("fuzz")[1]


def _schema():
    from api.app import app

    # loaded when the module is collected (no database needed: /openapi.json is public and static)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = _schema()


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_answer_documented(case, api):
    _, key = api
    case.call_and_validate(headers={"x-api-key": key}, checks=CHECKS)
