"""Delivery through the outbox to webhook receivers on local ports: one notification per state
change across re-runs, retries with back-off, a SIGKILL half-way through a delivery, the
Alertmanager formats, and a real Prometheus Alertmanager when it is installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from alerts_support import T0, Receiver, minutes, query, write_readings

from alerts.delivery import deliver_due, receivers
from alerts.evaluate import evaluate
from alerts.rules import parse_rules

RULES = parse_rules("""
rules:
  - {id: co2-high, kind: threshold, measure: co2, above: 1000, hysteresis: 50, severity: critical,
     labels: {team: facilities}, description: ventilate}
""")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def with_webhooks(settings, *urls, **extra):
    return settings.model_copy(update={"alert_webhooks": ",".join(urls), "alert_delivery_backoff_seconds": 0.2,
                                       "alert_delivery_timeout_seconds": 2.0, **extra})


def fire_and_resolve(settings, start=T0):
    """One alert that fires (10:00) and resolves (10:02), evaluated twice at each minute."""
    for m, v in enumerate([1200, 1300, 900]):
        write_readings(settings, "aq-1", "co2", [(m, v)], start=start)
        for _ in range(2):
            evaluate(as_of=start + minutes(m) + timedelta(seconds=30), settings=settings, ruleset=RULES)
            deliver_due(settings)


def test_one_message_per_state_change_across_re_runs(wh, receiver):
    settings = with_webhooks(wh, f"ops={receiver.url}/hook")
    fire_and_resolve(settings)
    evaluate(as_of=T0 + minutes(2.5), settings=settings, ruleset=RULES)   # the same pass again
    deliver_due(settings)
    assert [(r["path"], r["body"]["status"]) for r in receiver.requests] == [("/hook", "firing"), ("/hook", "resolved")]
    assert len(receiver.keys()) == 2
    firing, resolved = (r["body"] for r in receiver.requests)
    # the Alertmanager webhook body
    assert set(firing) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                           "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert firing["version"] == "4" and firing["receiver"] == "ops"
    (alert,) = firing["alerts"]
    assert alert["labels"] == {"alertname": "co2-high", "rule_id": "co2-high", "device_id": "aq-1",
                               "severity": "critical", "kind": "threshold", "measure": "co2", "building": "hq",
                               "floor": "1", "room": "101", "team": "facilities"}
    assert alert["startsAt"] == "2026-03-02T10:00:00Z" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["annotations"]["summary"] == "co2 1200 ppm, above 1000 ppm on aq-1 (hq, floor 1, room 101)"
    assert alert["annotations"]["description"] == "ventilate"
    assert resolved["alerts"][0]["endsAt"] == "2026-03-02T10:02:00Z"
    assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]
    assert query(settings, "select transition, attempts, delivered_at is not null from ops.alert_notifications"
                           " order by id") == [("firing", 1, True), ("resolved", 1, True)]


def test_retries_with_back_off_then_gives_up_with_the_reason(wh, receiver):
    settings = with_webhooks(wh, f"ops={receiver.url}", "down=http://127.0.0.1:9/hook", alert_delivery_attempts=3)
    receiver.fail_next = 2
    write_readings(settings, "aq-1", "co2", [(0, 1200)])
    evaluate(as_of=T0 + minutes(1), settings=settings, ruleset=RULES)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and query(settings, "select count(*) from ops.alert_notifications"
                                                          " where delivered_at is null and failed_at is null")[0][0]:
        deliver_due(settings)
        time.sleep(0.1)
    rows = query(settings, "select receiver, attempts, delivered_at is not null, failed_at is not null, last_error"
                           " from ops.alert_notifications order by receiver")
    assert rows[1][:4] == ("ops", 3, True, False)               # two HTTP 500s, then accepted
    assert rows[0][:4] == ("down", 3, False, True)              # nobody listening: given up after 3 tries
    assert rows[0][4].startswith("URLError") or "refused" in rows[0][4]
    assert len(receiver.requests) == 3 and len(receiver.keys()) == 1
    # the back-off doubled: 0.2 s, then 0.4 s between the tries
    times = query(settings, "select last_attempt_at - created_at from ops.alert_notifications where receiver = 'ops'")
    assert times[0][0] >= timedelta(seconds=0.6)


def test_a_resolution_waits_for_its_firing(wh, receiver):
    settings = with_webhooks(wh, f"ops={receiver.url}")
    receiver.fail_next = 1
    write_readings(settings, "aq-1", "co2", [(0, 1200), (1, 900)])
    evaluate(as_of=T0 + minutes(2), settings=settings, ruleset=RULES)   # fires and resolves in one pass
    deliver_due(settings)                       # firing refused once; the resolution must not overtake it
    time.sleep(0.3)
    deliver_due(settings)
    assert [r["body"]["status"] for r in receiver.requests] == ["firing", "firing", "resolved"]


def test_sigkill_during_delivery_loses_nothing_and_repeats_only_the_cut_message_with_its_key(wh, receiver,
                                                                                               test_state_dir):
    settings = with_webhooks(wh, f"ops={receiver.url}")
    write_readings(settings, "aq-1", "co2", [(0, 1200), (1, 900)])
    env = {**os.environ, "WAREHOUSE_DB": settings.warehouse_db, "ALERT_WEBHOOKS": settings.alert_webhooks,
           "ALERT_DELIVERY_TIMEOUT_SECONDS": "2", "ALERT_DELIVERY_BACKOFF_SECONDS": "0.2"}
    rules_file = test_state_dir / "sigkill-rules.yml"
    rules_file.write_text("rules:\n  - {id: co2-high, kind: threshold, measure: co2, above: 1000, hysteresis: 50}\n")
    env["ALERT_RULES_FILE"] = str(rules_file)
    at = (T0 + minutes(2)).strftime("%Y-%m-%dT%H:%M")
    cmd = [str(shutil.which("iot", path=os.path.dirname(sys.executable))), "alerts", "evaluate", "--at", at]
    receiver.hold = True
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert receiver.got_held.wait(120), "the delivery never reached the receiver"
        proc.send_signal(signal.SIGKILL)            # killed while the receiver holds the firing message
        proc.wait(30)
    finally:
        receiver.release.set()
    assert query(settings, "select transition, attempts, delivered_at is null from ops.alert_notifications"
                           " order by id") == [("firing", 1, True), ("resolved", 0, True)]
    time.sleep(3.2)                                 # the claim's lease (timeout + 1 s) runs out
    for _ in range(2):                              # the same pass re-run: no new transition, delivery resumes
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    statuses = [r["body"]["status"] for r in receiver.requests]
    assert statuses == ["firing", "firing", "resolved"]          # the cut message once more, same key
    assert receiver.requests[0]["key"] == receiver.requests[1]["key"]
    assert [json.dumps(r["body"], sort_keys=True) for r in receiver.requests[:2]][0] == \
        json.dumps(receiver.requests[1]["body"], sort_keys=True)
    assert len(receiver.keys()) == 2                              # one per state change
    assert query(settings, "select transition, attempts, delivered_at is not null from ops.alert_notifications"
                           " order by id") == [("firing", 2, True), ("resolved", 1, True)]
    assert query(settings, "select count(*) from ops.alert_events")[0][0] == 1


def test_receivers_setting_and_the_alertmanager_api_format(wh, receiver):
    settings = with_webhooks(wh, f"am={receiver.url}/api/v2/alerts", f"{receiver.url}/plain")
    assert [r.name for r in receivers(settings)] == ["am", f"127.0.0.1:{receiver.server.server_address[1]}/plain"]
    with pytest.raises(ValueError, match="not an http"):
        receivers(settings.model_copy(update={"alert_webhooks": "ops=ftp://x"}))
    fire_and_resolve(settings)
    api = [r["body"] for r in receiver.requests if r["path"] == "/api/v2/alerts"]
    assert [len(b) for b in api] == [1, 1]
    assert set(api[0][0]) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert api[0][0]["endsAt"].startswith("2999-")              # firing until the resolution says otherwise
    assert api[1][0]["endsAt"] == "2026-03-02T10:02:00Z"


ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest.mark.skipif(ALERTMANAGER is None, reason="Prometheus Alertmanager not installed "
                                                 "(Debian: apt-get install prometheus-alertmanager)")
def test_a_real_alertmanager_takes_the_alerts_and_notifies_its_own_webhook(wh, receiver, test_state_dir):
    import urllib.request

    from iot_cli.localstack.process import free_port

    port = free_port()
    home = test_state_dir / "alertmanager"
    home.mkdir(exist_ok=True)
    (home / "am.yml").write_text(f"""
route:
  receiver: hook
  group_by: [alertname, device_id]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {receiver.url}/from-alertmanager
        send_resolved: true
""")
    am = subprocess.Popen([ALERTMANAGER, f"--config.file={home / 'am.yml'}", f"--storage.path={home}",
                           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "alertmanager did not start"
                time.sleep(0.2)
        settings = with_webhooks(wh, f"am={base}/api/v2/alerts")
        write_readings(settings, "aq-1", "co2", [(0, 1200)])
        evaluate(as_of=T0 + minutes(1), settings=settings, ruleset=RULES)
        assert deliver_due(settings)["delivered"] == 1

        def active():
            with urllib.request.urlopen(f"{base}/api/v2/alerts?active=true", timeout=5) as r:
                return json.loads(r.read())

        (held,) = active()
        assert held["labels"]["alertname"] == "co2-high" and held["status"]["state"] == "active"
        write_readings(settings, "aq-1", "co2", [(2, 900)])
        evaluate(as_of=T0 + minutes(3), settings=settings, ruleset=RULES)
        assert deliver_due(settings)["delivered"] == 1
        deadline = time.monotonic() + 30
        while [r["body"]["status"] for r in receiver.requests] != ["firing", "resolved"]:
            assert time.monotonic() < deadline, f"alertmanager sent {[r['body'] for r in receiver.requests]}"
            time.sleep(0.2)
        assert active() == []
        # what Alertmanager itself posts to a webhook has the keys of the platform's webhook body
        am_body = receiver.requests[0]["body"]
        assert set(am_body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                                "commonLabels", "commonAnnotations", "externalURL", "alerts"}
        assert set(am_body["alerts"][0]) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                                             "fingerprint"}
        assert am_body["alerts"][0]["labels"]["device_id"] == "aq-1"
    finally:
        am.terminate()
        am.wait(10)
