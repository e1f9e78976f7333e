"""The rule file as Grafana alert rules (file provisioning), for the compose profile ``grafana``.

    .venv/bin/python -m alerts.grafana            # rewrite docker/grafana/provisioning/alerting/iot_alerts.yml
    .venv/bin/python -m alerts.grafana --check    # exit 1 when the provisioned file is stale

Each rule becomes one Grafana-managed rule: an SQL query on the warehouse (datasource
``iot-warehouse-api``, which reads stage and ml) that returns one row per device in scope with the
value the rule judges, and a threshold expression on it. Grafana turns the rows into one alert
instance per device (the text columns are its labels). What Grafana cannot express the same way
is approximated, and said so in each rule's ``platform_note`` annotation: Grafana judges the
newest value at each evaluation (every minute), not every reading; ``for``, hysteresis (its
recovery threshold) and the limits are the rule file's. The platform's own record stays
``ops.alert_events`` (docs/alerts.md, Grafana).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from alerts.rules import Rule, RuleSet, format_duration, load_rules
from iot_core.settings import PROJECT_ROOT

OUTPUT = PROJECT_ROOT / "docker" / "grafana" / "provisioning" / "alerting" / "iot_alerts.yml"
DATASOURCE_UID = "iot-warehouse-api"   # docker/grafana/provisioning/datasources/warehouse.yml
FOLDER = "IoT"
GROUP = "iot-platform-rules"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _scope_where(rule: Rule, active_only: bool = False) -> str:
    conds = []
    for column, values in (("kind", rule.scope.kinds), ("building", rule.scope.buildings),
                           ("floor", rule.scope.floors), ("room", rule.scope.rooms),
                           ("device_id", rule.scope.devices)):
        if values:
            conds.append(f"d.{column} in ({', '.join(_quote(v) for v in values)})")
    if active_only:
        conds.append("d.is_active is not false")
    return " and ".join(conds) or "true"


def _seconds(s: float) -> str:
    return f"interval '{int(s)} seconds'"


def rule_sql(rule: Rule) -> str:
    """One row per device in scope: ``device_id`` (the label) and ``value``."""
    scope = _scope_where(rule, active_only=rule.kind == "no_data")
    m = _quote(rule.measure or "")
    if rule.kind == "threshold":
        return (f"select d.device_id, r.value from stage.dim_devices d cross join lateral ("
                f"select value from stage.stg_sensor_readings where device_id = d.device_id and measure_name = {m}"
                f" and time > now() - {_seconds(rule.max_gap_s)} order by time desc limit 1) r where {scope}")
    if rule.kind == "rate":
        return (f"select d.device_id, ((r.value - p.value) / (extract(epoch from r.time - p.time) / 60.0))::float8"
                f" as value"
                f" from stage.dim_devices d cross join lateral (select time, value from stage.stg_sensor_readings"
                f" where device_id = d.device_id and measure_name = {m} and time > now() - {_seconds(rule.max_gap_s)}"
                f" order by time desc limit 1) r cross join lateral (select time, value from stage.stg_sensor_readings"
                f" where device_id = d.device_id and measure_name = {m}"
                f" and time between r.time - {_seconds(2 * rule.over_s)} and r.time - {_seconds(rule.over_s / 2)}"
                f" order by abs(extract(epoch from time - r.time) + {rule.over_s:g}) limit 1) p where {scope}")
    if rule.kind == "anomaly":
        return (f"select d.device_id, case when b.mad > 0 then (r.value - b.med) / (1.4826 * b.mad) else 0 end as value"
                f" from stage.dim_devices d cross join lateral (select time, value from stage.stg_sensor_readings"
                f" where device_id = d.device_id and measure_name = {m} and time > now() - {_seconds(rule.max_gap_s)}"
                f" order by time desc limit 1) r cross join lateral (select m.med, (select percentile_cont(0.5)"
                f" within group (order by abs(w.value - m.med)) from stage.stg_sensor_readings w"
                f" where w.device_id = d.device_id and w.measure_name = {m}"
                f" and w.time >= r.time - {_seconds(rule.window_s)} and w.time < r.time) as mad"
                f" from (select percentile_cont(0.5) within group (order by w.value) as med, count(*) as n"
                f" from stage.stg_sensor_readings w where w.device_id = d.device_id and w.measure_name = {m}"
                f" and w.time >= r.time - {_seconds(rule.window_s)} and w.time < r.time) m"
                f" where m.n >= {rule.min_points}) b where {scope}")
    if rule.kind == "no_data":
        measures = f"measure_name = {m}" if rule.measure else "true"
        return (f"select d.device_id, (extract(epoch from now() - r.newest) / 60.0)::float8 as value"
                f" from stage.dim_devices d"
                f" cross join lateral (select max(time) as newest from stage.stg_sensor_readings"
                f" where device_id = d.device_id and {measures}) r where r.newest is not null and {scope}")
    # forecast: the extreme predicted within the horizon by the device's newest forecast
    extreme = "min" if rule.below is not None else "max"
    within = int(rule.within_s // 60)
    return (f"select d.device_id, {extreme}(p.value) as value from stage.dim_devices d cross join lateral ("
            f"select max(issued_at) as issued from ml.predictions where device_id = d.device_id"
            f" and issued_at > now() - interval '15 minutes') i join ml.predictions p on p.device_id = d.device_id"
            f" and p.issued_at = i.issued and p.measure_name like {_quote(rule.measure + '~%')}"
            f" and split_part(p.measure_name, '~', 2)::int <= {within} where {scope} group by d.device_id")


def _threshold(rule: Rule) -> tuple[dict, dict | None]:
    """(evaluator, recovery evaluator) of the rule's condition on the value its query returns."""
    if rule.kind == "no_data":
        return {"type": "gt", "params": [rule.for_s / 60.0]}, None
    if rule.kind == "anomaly":
        return ({"type": "outside_range", "params": [-rule.z, rule.z]},
                {"type": "within_range", "params": [-(rule.z - rule.hysteresis), rule.z - rule.hysteresis]})
    if rule.below is not None:
        recovery = {"type": "gt", "params": [rule.below + rule.hysteresis]} if rule.hysteresis else None
        return {"type": "lt", "params": [rule.below]}, recovery
    recovery = {"type": "lt", "params": [rule.above - rule.hysteresis]} if rule.hysteresis else None
    return {"type": "gt", "params": [rule.above]}, recovery


def grafana_rule(rule: Rule) -> dict:
    evaluator, recovery = _threshold(rule)
    condition = {"evaluator": evaluator}
    if recovery:
        condition["unloadEvaluator"] = recovery
    notes = ["Grafana judges the newest value each minute; the platform judges every reading (ops.alert_events)"]
    if rule.keep_firing_s:
        notes.append(f"keep_firing_for {format_duration(rule.keep_firing_s)} is not provisioned")
    # no Go templates: Grafana expands $VARIABLES in provisioning files (the device is a label anyway)
    annotations = {"summary": f"{rule.kind} rule {rule.id} of the platform's rule file", "platform_rule": rule.id,
                   "platform_rule_version": rule.version, "platform_note": "; ".join(notes)}
    if rule.description:
        annotations["description"] = rule.description
    lookback = int(max(rule.max_gap_s, rule.window_s if rule.kind == "anomaly" else 0, 600))
    return {
        "uid": f"iot-{rule.id}"[:40],
        "title": rule.id,
        "condition": "C",
        "data": [
            {"refId": "A", "relativeTimeRange": {"from": lookback, "to": 0}, "datasourceUid": DATASOURCE_UID,
             "model": {"refId": "A", "rawSql": rule_sql(rule), "format": "table", "rawQuery": True,
                       "editorMode": "code"}},
            {"refId": "C", "datasourceUid": "__expr__",
             "model": {"refId": "C", "type": "threshold", "expression": "A", "conditions": [condition]}},
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": format_duration(0 if rule.kind == "no_data" else rule.for_s),
        "isPaused": not rule.enabled,
        "labels": {"severity": rule.severity, "rule_id": rule.id, "kind": rule.kind, **dict(rule.labels)},
        "annotations": annotations,
    }


def provisioning(ruleset: RuleSet) -> dict:
    return {"apiVersion": 1, "groups": [{"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m",
                                         "rules": [grafana_rule(r) for r in ruleset.rules]}]}


def render(ruleset: RuleSet) -> str:
    header = (f"# GENERATED by `python -m alerts.grafana` from {ruleset.source} (version {ruleset.version}).\n"
              "# Do not edit: change the rule file and regenerate (docs/alerts.md, Grafana).\n")
    return header + yaml.safe_dump(provisioning(ruleset), sort_keys=False, width=120, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m alerts.grafana", description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", default=None, help="rule file (default: ALERT_RULES_FILE or alerts/rules.yml)")
    p.add_argument("--out", type=Path, default=OUTPUT)
    p.add_argument("--check", action="store_true", help="only check that --out is up to date")
    args = p.parse_args(argv)
    text = render(load_rules(args.rules))
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run `python -m alerts.grafana`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
