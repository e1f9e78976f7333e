"""Re-running an evaluation for the same data changes nothing: again, late, or twice at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from alerts_support import T0, minutes, query, write_readings

from alerts.evaluate import evaluate
from alerts.rules import parse_rules
from iot_core.connections import pg_connect

RULES = parse_rules("""
rules:
  - {id: co2-high, kind: threshold, measure: co2, above: 1000, for: 3m, hysteresis: 50}
  - {id: co2-rising, kind: rate, measure: co2, above: 20, for: 1m}
  - {id: silent, kind: no_data, for: 5m, scope: {kind: air_quality}}
""")
TABLES = ("ops.alert_events", "ops.alert_notifications", "ops.alert_state", "ops.alert_progress", "ops.alert_rules")


def snapshot(settings) -> dict[str, list]:
    out = {}
    for t in TABLES:
        out[t] = query(settings, f"select j from (select to_jsonb(x) - 'updated_at' - 'created_at' as j from {t} x) y"
                                 " order by j::text")
    return out


def scenario(settings):
    write_readings(settings, "aq-1", "co2", [(m, 900 + 40 * m) for m in range(10)])
    write_readings(settings, "aq-2", "co2", [(m, 500) for m in range(3)])      # then silent


def test_the_same_pass_again_or_an_older_one_changes_nothing(wh):
    settings = wh.model_copy(update={"alert_webhooks": "ops=http://127.0.0.1:9/hook"})
    scenario(settings)
    for m in range(0, 12, 2):
        evaluate(as_of=T0 + minutes(m) + timedelta(seconds=30), settings=settings, ruleset=RULES)
    before = snapshot(settings)
    assert len(before["ops.alert_events"]) >= 3 and before["ops.alert_notifications"]
    evaluate(as_of=T0 + minutes(10.5), settings=settings, ruleset=RULES)    # the last pass again
    evaluate(as_of=T0 + minutes(4.5), settings=settings, ruleset=RULES)     # an older one
    assert snapshot(settings) == before


def test_two_passes_at_once_do_what_one_does(wh):
    settings = wh.model_copy(update={"alert_webhooks": "ops=http://127.0.0.1:9/hook"})
    scenario(settings)
    evaluate(as_of=T0 + minutes(11), settings=settings, ruleset=RULES)
    alone = snapshot(settings)
    with_ids = query(settings, "select count(*) from ops.alert_events")
    with pg_connect("transformer", settings=settings) as conn:
        conn.execute("truncate ops.alert_events, ops.alert_notifications, ops.alert_state, ops.alert_progress,"
                      " ops.alert_rules, ops.alert_runs restart identity")
        conn.commit()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: evaluate(as_of=T0 + minutes(11), settings=settings, ruleset=RULES), range(2)))
    together = snapshot(settings)
    assert query(settings, "select count(*) from ops.alert_events") == with_ids

    # ids are drawn from a sequence and the clocks of bookkeeping differ between the two runs
    volatile = {"id", "alert_id", "first_loaded_at", "next_attempt_at", "idempotency_key", "payload"}

    def strip_ids(snap):
        return {t: sorted(str({k: v for k, v in row[0].items() if k not in volatile}) for row in rows)
                for t, rows in snap.items()}

    assert strip_ids(together) == strip_ids(alone)
    assert query(settings, "select count(*) from ops.alert_runs") == [(2,)]   # both ran; one found nothing new
