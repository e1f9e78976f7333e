"""Each kind of rule fires and resolves on crafted readings, evaluated minute by minute as the DAG
would, on the real stage tables (built by dbt) of a throw-away PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from alerts_support import T0, alerts, minutes, query, write_forecast, write_readings

from alerts.evaluate import evaluate
from alerts.rules import parse_rules


def replay(settings, ruleset, device, measure, values, start=T0, lag_s=30):
    """Write one reading a minute and evaluate ``lag_s`` after each (as the DAG does after a stage build)."""
    for m, v in enumerate(values):
        if v is not None:
            write_readings(settings, device, measure, [(m, v)], start=start)
        evaluate(as_of=start + minutes(m) + timedelta(seconds=lag_s), settings=settings, ruleset=ruleset)


def states(settings, rule_id):
    return query(settings, "select device_id, state, fired_at is not null from ops.alert_events where rule_id = %s"
                           " order by started_at, id", rule_id)


THRESHOLD = parse_rules("""
rules:
  - id: co2-high
    kind: threshold
    measure: co2
    above: 1000
    for: 10m
    hysteresis: 50
""")


def test_threshold_fires_after_its_duration_and_resolves_past_the_hysteresis_band(wh):
    # a 5-minute breach (shorter than `for`) is cancelled; then 16 minutes above; 980 is inside the
    # band (950-1000): still firing; 900 resolves
    values = [1100] * 5 + [900] * 3 + [1100] * 16 + [980] * 5 + [900] * 5
    replay(wh, THRESHOLD, "aq-1", "co2", values)
    assert alerts(wh) == [
        ("aq-1", "resolved", T0, None, T0 + minutes(5), 1100.0),                       # cleared before firing
        ("aq-1", "resolved", T0 + minutes(8), T0 + minutes(18), T0 + minutes(29), 1100.0)]
    (message,) = query(wh, "select message from ops.alert_events where fired_at is not null")[0]
    assert message.startswith("resolved: co2 1100 ppm, above 1000 ppm for 10m on aq-1 (hq, floor 1, room 101)")


def test_a_breach_hovering_at_the_limit_does_not_flap(wh):
    # 1001 / 999 every other minute: the condition never holds for `for` -> nothing fires
    replay(wh, THRESHOLD, "aq-1", "co2", [1001, 999] * 15)
    assert [s for s in states(wh, "co2-high") if s[2]] == []
    # once firing, dips into the band (960-999) do not resolve it: one alert, one firing
    replay(wh, THRESHOLD, "aq-2", "co2", [1100] * 11 + [1100, 960] * 10, start=T0 + minutes(40))
    assert states(wh, "co2-high")[-1] == ("aq-2", "firing", True)
    assert len([s for s in states(wh, "co2-high") if s[0] == "aq-2"]) == 1


def test_a_gap_longer_than_max_gap_restarts_the_duration(wh):
    rules = parse_rules("""
rules:
  - {id: co2-gappy, kind: threshold, measure: co2, above: 1000, for: 10m, max_gap: 3m}
""")
    # above for 6 minutes, 5 minutes without readings, above for 6 more: never 10 minutes seen in a row
    replay(wh, rules, "aq-1", "co2", [1100] * 6 + [None] * 5 + [1100] * 6)
    assert [s for s in states(wh, "co2-gappy") if s[2]] == []
    assert len(states(wh, "co2-gappy")) == 2


def test_below_limit_keep_firing_for(wh):
    rules = parse_rules("""
rules:
  - {id: humidity-low, kind: threshold, measure: humidity, below: 20, keep_firing_for: 3m}
""")
    # fires at once (no `for`); a 2-minute recovery is not enough (keep_firing_for 3m); a 4-minute one is
    replay(wh, rules, "aq-1", "humidity", [30, 15, 15, 25, 25, 15, 25, 25, 25, 25, 25])
    assert alerts(wh, "humidity-low") == [("aq-1", "resolved", T0 + minutes(1), T0 + minutes(1), T0 + minutes(9), 15.0)]


def test_rate_of_change_per_minute(wh):
    rules = parse_rules("""
rules:
  - {id: co2-rising, kind: rate, measure: co2, above: 50, over: 1m, for: 2m}
""")
    values = [500] * 5 + [500 + 80 * k for k in range(1, 7)] + [980] * 5
    replay(wh, rules, "aq-1", "co2", values)
    assert alerts(wh, "co2-rising") == [("aq-1", "resolved", T0 + minutes(5), T0 + minutes(7), T0 + minutes(11), 80.0)]


def test_anomaly_robust_z_against_the_device_s_own_recent_readings(wh):
    rules = parse_rules("""
rules:
  - {id: iaq-odd, kind: anomaly, measure: iaq, window: 30m, z: 4, min_points: 10}
""")
    normal = [50 + (k % 5) - 2 for k in range(40)]          # 48..52, MAD 1
    values = normal + [90, 95, 92] + [50, 51, 49, 50]
    replay(wh, rules, "aq-1", "iaq", values)
    # the first 10 minutes have too few points to judge; the spike fires at once and clears after it
    assert alerts(wh, "iaq-odd") == [("aq-1", "resolved", T0 + minutes(40), T0 + minutes(40), T0 + minutes(43), 90.0)]
    (message,) = query(wh, "select message from ops.alert_events")[0]
    assert "robust z from its 30m median" in message


def test_no_data_fires_after_the_silence_and_resolves_at_the_next_reading(wh):
    rules = parse_rules("""
rules:
  - {id: silent, kind: no_data, for: 5m, scope: {kind: air_quality}}
""")
    values = [400] * 10 + [None] * 16 + [400] * 5
    replay(wh, rules, "aq-1", "co2", values)
    # newest reading 10:09; silent 5 minutes at 10:14, seen by the evaluation of 10:14:30;
    # readings again at 10:26
    assert alerts(wh, "silent") == [("aq-1", "resolved", T0 + minutes(14), T0 + minutes(14.5), T0 + minutes(26), 5.5)]
    # the decommissioned device, the watch and devices that never sent a reading are not watched
    assert {d for d, *_ in alerts(wh)} == {"aq-1"}


def test_no_data_watches_a_listed_device_that_never_sent(wh):
    rules = parse_rules("""
rules:
  - {id: silent-listed, kind: no_data, for: 5m, scope: {devices: [aq-3]}}
""")
    evaluate(as_of=T0, settings=wh, ruleset=rules)
    assert [a[:2] for a in alerts(wh)] == [("aq-3", "firing")]


def test_forecast_warns_before_the_crossing_with_the_lead_time(wh):
    rules = parse_rules("""
rules:
  - {id: iaq-soon, kind: forecast, measure: iaq, above: 150, within: 15m, hysteresis: 10}
""")
    flat, rising, falling = [120.0] * 15, [120.0 + 5 * h for h in range(1, 16)], [130.0] * 15
    for m, values in enumerate([flat, flat, rising, rising, [145.0] * 15, falling]):
        issued = T0 + minutes(m)
        write_forecast(wh, "aq-1", issued, values)
        evaluate(as_of=issued + timedelta(seconds=10), settings=wh, ruleset=rules)
    # the issue of 10:02 predicts 155 (> 150) at h = 7: fires at 10:02, crossing predicted for 10:09;
    # 145 at 10:04 is inside the band (140-150): still firing; 130 at 10:05 resolves
    rows = query(wh, "select state, started_at, fired_at, resolved_at, lead_minutes, predicted_at, value"
                     " from ops.alert_events where rule_id = 'iaq-soon'")
    assert rows == [("resolved", T0 + minutes(2), T0 + minutes(2), T0 + minutes(5), 7.0, T0 + minutes(9), 195.0)]


def test_scope_by_building_floor_room_and_device_list(wh):
    rules = parse_rules("""
rules:
  - {id: hq-floor-1, kind: threshold, measure: co2, above: 1000, scope: {building: hq, floor: 1}}
  - {id: the-lab, kind: threshold, measure: co2, above: 1000, scope: {room: [clean-room]}}
  - {id: listed, kind: threshold, measure: co2, above: 1000, scope: {devices: [aq-2, aq-f2]}}
""")
    for device in ("aq-1", "aq-2", "aq-f2", "aq-lab"):
        write_readings(wh, device, "co2", [(0, 1200)])
    evaluate(as_of=T0 + minutes(1), settings=wh, ruleset=rules)
    fired = query(wh, "select rule_id, array_agg(device_id order by device_id) from ops.alert_events"
                      " where state = 'firing' group by rule_id order by 1")
    assert fired == [("hq-floor-1", ["aq-1", "aq-2"]), ("listed", ["aq-2", "aq-f2"]), ("the-lab", ["aq-lab"])]
    labels = query(wh, "select labels from ops.alert_events where rule_id = 'the-lab'")[0][0]
    assert labels == {"alertname": "the-lab", "rule_id": "the-lab", "device_id": "aq-lab", "severity": "warning",
                      "kind": "threshold", "measure": "co2", "building": "lab", "floor": "0", "room": "clean-room"}


def test_a_device_leaving_the_scope_and_a_removed_rule_resolve_their_alerts(wh):
    before = parse_rules("""
rules:
  - {id: scoped, kind: threshold, measure: co2, above: 1000, scope: {devices: [aq-1, aq-2]}}
  - {id: doomed, kind: threshold, measure: co2, above: 1000}
""")
    write_readings(wh, "aq-1", "co2", [(0, 1200)])
    write_readings(wh, "aq-2", "co2", [(0, 1200)])
    evaluate(as_of=T0 + minutes(1), settings=wh, ruleset=before)
    assert len(query(wh, "select 1 from ops.alert_events where state = 'firing'")) == 4
    after = parse_rules("""
rules:
  - {id: scoped, kind: threshold, measure: co2, above: 1000, scope: {devices: [aq-2]}}
""")
    evaluate(as_of=T0 + minutes(2), settings=wh, ruleset=after)
    rows = query(wh, "select rule_id, device_id, state, message from ops.alert_events order by 1, 2")
    assert [r[:3] for r in rows] == [("doomed", "aq-1", "resolved"), ("doomed", "aq-2", "resolved"),
                                     ("scoped", "aq-1", "resolved"), ("scoped", "aq-2", "firing")]
    assert rows[0][3].endswith("the rule was removed from the rule file at 2026-03-02 10:02 UTC")
    assert rows[2][3].endswith("the device left the rule's scope at 2026-03-02 10:02 UTC")
    assert query(wh, "select rule_id, is_current from ops.alert_rules order by 1, 2") == [
        ("doomed", False), ("scoped", False), ("scoped", True)]
