"""The rule file: the shipped defaults, its version hashes, and clear errors for bad files."""

from __future__ import annotations

import pytest

from alerts.measures import FORECAST_HORIZON_MINUTES, FORECAST_MEASURES, ContractUnavailable, measure_units
from alerts.rules import (
    DEFAULT_RULES_FILE,
    RuleError,
    check_measures,
    load_rules,
    parse_duration,
    parse_rules,
)

MEASURES = ("iaq", "temperature", "humidity", "pressure", "voc", "co2", "iaq_accuracy")


def problems(text: str, measures=MEASURES) -> list[str]:
    with pytest.raises(RuleError) as e:
        ruleset = parse_rules(text, "rules.yml")
        check_measures(ruleset, measures, FORECAST_MEASURES, FORECAST_HORIZON_MINUTES)
    return e.value.problems


def test_the_shipped_defaults_are_the_four_the_platform_promises():
    rules = {r.id: r for r in load_rules(DEFAULT_RULES_FILE, MEASURES, FORECAST_MEASURES,
                                         FORECAST_HORIZON_MINUTES).rules}
    co2, iaq, silent, soon = rules["co2-high"], rules["iaq-high"], rules["device-silent"], rules["iaq-forecast-high"]
    assert (co2.kind, co2.measure, co2.above, co2.for_s) == ("threshold", "co2", 1000, 600)
    assert (iaq.kind, iaq.measure, iaq.above, iaq.for_s) == ("threshold", "iaq", 150, 300)
    assert (silent.kind, silent.for_s) == ("no_data", 600)
    assert (soon.kind, soon.measure, soon.above, soon.within_s) == ("forecast", "iaq", 150, 900)
    assert all(r.scope.kinds == ("air_quality",) for r in rules.values())


def test_the_example_of_the_issue_parses():
    (rule,) = parse_rules("""
rules:
  - id: co2-high
    kind: threshold
    measure: co2
    above: 1000
    for: 10m
    severity: warning
""").rules
    assert (rule.id, rule.above, rule.for_s, rule.severity, rule.hysteresis) == ("co2-high", 1000, 600, "warning", 0)


def test_version_hash_follows_behaviour_not_formatting():
    a = parse_rules("rules:\n  - {id: r, kind: threshold, measure: co2, above: 1000, for: 10m}\n")
    b = parse_rules("# a comment\nrules:\n  - for: 600s\n    above: 1000.0\n    measure: co2\n    kind: threshold\n"
                    "    id: r\n")
    c = parse_rules("rules:\n  - {id: r, kind: threshold, measure: co2, above: 1001, for: 10m}\n")
    assert a.rules[0].version == b.rules[0].version != c.rules[0].version
    assert a.version == b.version != c.version


def test_durations():
    assert parse_duration("30s", "for") == 30
    assert parse_duration("1h30m", "for") == 5400
    assert parse_duration("2d", "for") == 172800
    for bad in ("10", "10 minutes", "-5m", "m", ""):
        with pytest.raises(ValueError, match="'for'"):
            parse_duration(bad, "for")
    with pytest.raises(ValueError, match="needs a unit"):
        parse_duration(10, "for")


def test_every_problem_of_a_bad_file_is_reported_with_its_line_and_rule():
    found = problems("""rules:
  - id: co2-high
    kind: threshold
    measure: co3
    above: 1000
    for: 10 minutes
  - id: co2-high
    kind: treshold
  - id: Bad Id
    kind: rate
    measure: co2
    abvoe: 5
  - id: both
    kind: threshold
    measure: iaq
    above: 1
    below: 2
    severity: urgent
    labels: {alertname: x, "team-name": y}
  - id: soon
    kind: forecast
    measure: co2
    above: 1000
  - id: far
    kind: forecast
    measure: iaq
    above: 150
    within: 30m
  - id: quiet
    kind: no_data
""")
    text = "\n".join(found)
    assert "rules.yml:2: rule 1 (co2-high): 'for' is '10 minutes': not a duration" in text
    assert "rules.yml:7: duplicate id 'co2-high' (rules 1 and 2)" in text
    assert "rules.yml:7: rule 2 (co2-high): 'kind' is 'treshold', expected one of" in text
    assert "rules.yml:9: rule 3 (Bad Id): 'id' is 'Bad Id'" in text
    assert "rule 3 (Bad Id): unknown key(s) ['abvoe'] for a rate rule" in text
    assert "rule 4 (both): a threshold rule needs exactly one of 'above' and 'below'" in text
    assert "rule 4 (both): 'severity' is 'urgent', expected one of ['critical', 'warning', 'info']" in text
    assert "label 'alertname' is set by the platform" in text
    assert "label name 'team-name' is not valid" in text
    assert "rules.yml:29: rule 7 (quiet): a no_data rule needs 'for'" in text
    assert len(found) == 11
    # the measures are checked once the structure is sound
    measure_problems = problems("""rules:
  - {id: a, kind: threshold, measure: co3, above: 1000}
  - {id: soon, kind: forecast, measure: co2, above: 1000}
  - {id: far, kind: forecast, measure: iaq, above: 150, within: 30m}
""")
    assert measure_problems == [
        "rules.yml:2: rule a: unknown measure 'co3' (known: co2, humidity, iaq, iaq_accuracy, pressure, temperature, voc)",
        "rules.yml:3: rule soon: no forecast of 'co2' exists (the forecast writes: iaq)",
        "rules.yml:4: rule far: 'within' is 30m, beyond the forecast's horizon of 15m"]


def test_yaml_errors_and_duplicate_keys_are_named():
    assert problems("rules:\n  - id: a\n    kind: [threshold\n")[0].startswith("rules.yml:4: not valid YAML")
    dup = problems("rules:\n  - id: a\n    kind: threshold\n    measure: co2\n    above: 1\n    above: 2\n")
    assert "duplicate key 'above' (line 6)" in dup[0]
    assert problems("rule:\n  - id: a\n") == ["rules.yml: expected a mapping with a 'rules' list at the top"]
    assert problems("rules: {id: a}\n") == ["rules.yml: 'rules' must be a list of rules, got a mapping"]


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RuleError, match="cannot read the rule file"):
        load_rules(tmp_path / "nope.yml")


def test_measure_names_come_from_the_warehouse_contract_table(wh):
    from iot_core.connections import pg_connect

    with pg_connect("transformer", settings=wh) as conn:
        units = measure_units(conn)
    assert set(units) == set(MEASURES) and units["co2"] == "ppm"
    # a warehouse whose stage is not built yet: the table dropped inside a transaction that
    # measure_units rolls back (the roles may not connect to another database to try it there)
    with pg_connect("transformer", settings=wh) as conn:
        conn.execute("drop table stage.stg_sensor_measures cascade")
        with pytest.raises(ContractUnavailable, match="build the stage layer first"):
            measure_units(conn)
    with pg_connect("transformer", settings=wh) as conn:
        assert measure_units(conn) == units  # rolled back: nothing was dropped
