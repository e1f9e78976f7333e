"""GET /alerts: the same key rule, envelope and paging as the other endpoints."""

from datetime import UTC, datetime, timedelta

import pytest

from iot_core.connections import pg_connect

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def alert_rows(client, isolated_warehouse):
    """Alerts as the evaluation writes them: 3 resolved, 1 firing, 1 pending."""
    from alerts.schema import ensure_schema

    with pg_connect("transformer") as conn:
        ensure_schema(conn, isolated_warehouse)
        rows = [("co2-high", "aq-1", "resolved", 0, 10, 25), ("co2-high", "aq-2", "resolved", 5, 15, 30),
                ("device-silent", "aq-3", "resolved", 7, 7, 40), ("co2-high", "aq-1", "firing", 50, 60, None),
                ("iaq-high", "aq-2", "pending", 70, None, None)]
        for rule, device, state, start, fired, resolved in rows:
            conn.execute(
                "insert into ops.alert_events (rule_id, rule_version, device_id, kind, measure, severity, state,"
                " started_at, fired_at, resolved_at, value, \"limit\", message)"
                " values (%s, 'v1', %s, 'threshold', 'co2', 'warning', %s, %s, %s, %s, 1200, 1000, %s)",
                (rule, device, state, T0 + timedelta(minutes=start),
                 None if fired is None else T0 + timedelta(minutes=fired),
                 None if resolved is None else T0 + timedelta(minutes=resolved), f"{rule} on {device}"))
        conn.commit()


def test_alerts_need_a_key_and_say_503_before_the_tables_exist(client, api_key):
    assert client.get("/alerts").status_code == 401
    assert client.get("/alerts", headers={"x-api-key": "iot_wrong"}).status_code == 403
    with pg_connect("transformer", autocommit=True) as conn:
        if conn.execute("select to_regclass('ops.alert_events')").fetchone()[0]:
            pytest.skip("alert tables already created by an earlier test")
    r = client.get("/alerts", headers={"x-api-key": api_key})
    assert r.status_code == 503 and "no alerts yet" in r.json()["detail"]


def test_open_alerts_in_the_envelope(client, api_key, alert_rows):
    body = client.get("/alerts", headers={"x-api-key": api_key}).json()
    assert body["Metadata"]["SourceType"] == "Alerts"
    assert body["Metadata"]["ColumnName"][:5] == ["id", "rule_id", "deviceId", "severity", "state"]
    assert len(body["Metadata"]["ColumnName"]) == len(body["Metadata"]["ColumnType"]) == len(body["Records"][0])
    assert [(r[1], r[2], r[4]) for r in body["Records"]] == [("iaq-high", "aq-2", "pending"),
                                                             ("co2-high", "aq-1", "firing")]
    assert body["Records"][1][6] == "2026-03-02T11:00:00+00:00"     # fired_at
    assert "NextToken" not in body["ExecutionInfo"]


def test_history_filters_and_pages(client, api_key, alert_rows):
    h = {"x-api-key": api_key}
    first = client.get("/alerts", params={"state": "all", "limit": 2}, headers=h).json()
    token = first["ExecutionInfo"]["NextToken"]
    second = client.get("/alerts", params={"state": "all", "limit": 2, "NextToken": token}, headers=h).json()
    third = client.get("/alerts", params={"state": "all", "limit": 2,
                                          "NextToken": second["ExecutionInfo"]["NextToken"]}, headers=h).json()
    ids = [r[0] for page in (first, second, third) for r in page["Records"]]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    assert second["ExecutionInfo"]["NextTokenConsumed"] == 2 and "NextToken" not in third["ExecutionInfo"]
    resolved = client.get("/alerts", params={"state": "resolved", "device": "aq-1"}, headers=h).json()["Records"]
    assert [(r[2], r[4]) for r in resolved] == [("aq-1", "resolved")]
    window = {"state": "all", "from": int((T0 + timedelta(minutes=5)).timestamp()),
              "to": int((T0 + timedelta(minutes=50)).timestamp()), "rule": "co2-high"}
    assert [r[5] for r in client.get("/alerts", params=window, headers=h).json()["Records"]] == [
        "2026-03-02T10:50:00+00:00", "2026-03-02T10:05:00+00:00"]


def test_bad_parameters_are_4xx(client, api_key, alert_rows):
    h = {"x-api-key": api_key}
    assert client.get("/alerts", params={"state": "burning"}, headers=h).status_code == 422
    assert client.get("/alerts", params={"from": 200, "to": 100}, headers=h).status_code == 400
    assert client.get("/alerts", params={"NextToken": "zzz"}, headers=h).status_code == 400


def test_the_read_only_analyst_can_read_the_alert_tables(alert_rows):
    with pg_connect("analyst") as conn:
        for table in ("alert_events", "alert_rules", "alert_notifications", "alert_runs"):
            conn.execute(f"select count(*) from ops.{table}").fetchone()
        assert conn.execute("select count(*) from ops.alert_events").fetchone()[0] == 5
