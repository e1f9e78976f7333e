"""The Grafana alert rules provisioned for the compose profile `grafana` (no Grafana here: checked
statically, and their SQL run on the warehouse as the role of Grafana's datasource)."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml
from alerts_support import minutes, write_readings

from alerts import grafana
from alerts.rules import DEFAULT_RULES_FILE, load_rules, parse_rules
from iot_core.connections import pg_connect
from iot_core.settings import PROJECT_ROOT

DATASOURCES = PROJECT_ROOT / "docker" / "grafana" / "provisioning" / "datasources" / "warehouse.yml"


def test_the_provisioned_file_is_generated_from_the_rule_file():
    assert grafana.OUTPUT.read_text() == grafana.render(load_rules(DEFAULT_RULES_FILE)), \
        "docker/grafana/provisioning/alerting/iot_alerts.yml is stale: run `python -m alerts.grafana`"
    assert grafana.main(["--check"]) == 0


def test_one_grafana_rule_per_platform_rule_with_its_limits():
    doc = yaml.safe_load(grafana.OUTPUT.read_text())
    assert "$" not in grafana.OUTPUT.read_text()          # Grafana would expand it as an environment variable
    assert doc["apiVersion"] == 1
    (group,) = doc["groups"]
    assert group["interval"] == "1m" and group["folder"] == "IoT"
    rules = {r["title"]: r for r in group["rules"]}
    platform = {r.id: r for r in load_rules(DEFAULT_RULES_FILE).rules}
    assert set(rules) == set(platform)
    assert len({r["uid"] for r in rules.values()}) == len(rules)
    datasource_uids = {d["uid"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    for rule_id, r in rules.items():
        query, condition = r["data"]
        assert query["datasourceUid"] in datasource_uids
        assert condition["datasourceUid"] == "__expr__" and r["condition"] == condition["refId"] == "C"
        assert r["labels"]["severity"] == platform[rule_id].severity
        assert r["annotations"]["platform_rule_version"] == platform[rule_id].version
    co2 = rules["co2-high"]
    assert co2["for"] == "10m"
    assert co2["data"][1]["model"]["conditions"] == [{"evaluator": {"type": "gt", "params": [1000.0]},
                                                      "unloadEvaluator": {"type": "lt", "params": [950.0]}}]
    assert rules["device-silent"]["data"][1]["model"]["conditions"][0]["evaluator"] == {"type": "gt",
                                                                                          "params": [10.0]}


def test_the_queries_run_as_grafana_s_role_and_return_device_and_value(wh):
    every_kind = parse_rules("""
rules:
  - {id: t, kind: threshold, measure: co2, above: 1000, max_gap: 1d, scope: {kind: air_quality, floor: ["1"]}}
  - {id: r, kind: rate, measure: co2, above: 10, over: 1m, max_gap: 1d}
  - {id: a, kind: anomaly, measure: co2, z: 3, min_points: 3, window: 1d, max_gap: 1d}
  - {id: s, kind: no_data, for: 10m, scope: {devices: ["aq-1", "it's"]}}
  - {id: f, kind: forecast, measure: iaq, above: 150}
""")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - minutes(10)
    write_readings(wh, "aq-1", "co2", [(m, 400 + 10 * m) for m in range(10)], start=start)
    results = {}
    with pg_connect("api", settings=wh) as conn:       # datasource iot-warehouse-api
        for r in every_kind.rules:
            rows = conn.execute(grafana.rule_sql(r)).fetchall()
            assert all(isinstance(d, str) and (v is None or isinstance(v, float)) for d, v in rows), r.id
            results[r.id] = dict(rows)
    assert results["t"] == {"aq-1": 490.0}
    assert results["r"] == {"aq-1": 10.0}
    # the newest reading is one whole minute before the minute the test started in: 1 to 2 minutes ago
    assert 1 <= results["s"]["aq-1"] < 2.5
