"""`iot alerts evaluate | list | ack | test` on the alert tests' warehouse."""

from __future__ import annotations

import pytest
from alerts_support import T0, Receiver, minutes, write_readings
from click.testing import CliRunner

from iot_cli.main import cli
from iot_core.settings import get_settings


@pytest.fixture
def cli_env(wh, monkeypatch, tmp_path):
    receiver = Receiver()
    rules = tmp_path / "rules.yml"
    rules.write_text("rules:\n  - {id: co2-high, kind: threshold, measure: co2, above: 1000,"
                     " scope: {devices: [aq-1, ghost-1]}}\n")
    monkeypatch.setenv("WAREHOUSE_DB", wh.warehouse_db)
    monkeypatch.setenv("ALERT_RULES_FILE", str(rules))
    monkeypatch.setenv("ALERT_WEBHOOKS", f"ops={receiver.url}")
    get_settings.cache_clear()
    yield rules, receiver
    receiver.close()
    monkeypatch.undo()
    get_settings.cache_clear()


def run(*args):
    return CliRunner().invoke(cli, ["alerts", *args], catch_exceptions=False)


def test_test_checks_the_rules_and_the_receivers(cli_env):
    rules, receiver = cli_env
    out = run("test")
    assert out.exit_code == 0, out.output
    assert "co2-high" in out.output and "1 devices (devices in ['aq-1', 'ghost-1'])" in out.output
    assert "warning: not in the device registry: ghost-1" in out.output
    assert "receiver ops: HTTP 200" in out.output
    assert receiver.requests[0]["body"]["alerts"][0]["labels"]["alertname"] == "iot-alerts-test"
    rules.write_text("rules:\n  - {id: co2-high, kind: threshold, measure: co3, above: 1000}\n")
    bad = run("test", "--no-send")
    assert bad.exit_code == 1 and "unknown measure 'co3'" in bad.output


def test_evaluate_list_and_ack(cli_env):
    _, receiver = cli_env
    write_readings(get_settings(), "aq-1", "co2", [(0, 1500)])
    out = run("evaluate", "--at", (T0 + minutes(1)).strftime("%Y-%m-%dT%H:%M"))
    assert out.exit_code == 0, out.output
    assert "transitions {'start': 1, 'fire': 1}, 1 notifications queued" in out.output
    assert "delivery: 1 delivered" in out.output and len(receiver.requests) == 1
    listed = run("list")
    assert "firing" in listed.output and "co2 1500 ppm, above 1000 ppm on aq-1" in listed.output
    alert_id = int(listed.output.split()[0].lstrip("#"))
    acked = run("ack", str(alert_id), "--by", "ops-oncall", "--note", "window opened")
    assert acked.exit_code == 0 and f"#{alert_id} (firing) acknowledged" in acked.output
    assert "[acked by ops-oncall]" in run("list", "--state", "all").output
    assert "no resolved alerts" in run("list", "--state", "resolved").output
    missing = run("ack", "999999")
    assert missing.exit_code == 1 and "no alert with id 999999" in missing.output
