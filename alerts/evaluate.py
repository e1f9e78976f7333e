"""One evaluation pass: every rule over what is new in stage and ml since its last pass.

The pass takes a snapshot of stage (the newest ``_ingested_at``) and reads the readings that
arrived since the rules' progress once, into a temporary table the rules share. Then, for each
rule, in one transaction (serialised per rule by an advisory lock, so the DAG and
``iot alerts evaluate`` may overlap safely):

1. observe: the rule's new observations per device (``alerts.signals``);
2. advance the state machine of each rule x device (``alerts.machine``);
3. write what changed: ``ops.alert_events`` (one row per alert, one open alert per rule x
   device), the outbox ``ops.alert_notifications`` (one row per firing / resolved transition and
   receiver), the machines that moved (``ops.alert_state``) and the rule's progress.

Because the progress moves in the same transaction as the alerts and the outbox, a pass that is
re-run for the same data, or killed half-way and re-run, changes nothing twice. Devices that
leave a rule's scope, and rules that are removed or disabled, resolve their open alerts.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from alerts import machine, notify, signals
from alerts.delivery import Receiver, external_url, receivers
from alerts.measures import FORECAST_HORIZON_MINUTES, FORECAST_MEASURES, measure_units
from alerts.rules import Rule, RuleSet, Scope, check_measures, load_rules
from alerts.schema import ensure_schema
from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

_RULE_LOCK = 0x616C6572  # pg_advisory_xact_lock(_RULE_LOCK, hashtext(rule_id)): two int4 keys
READING_KINDS = ("threshold", "rate", "anomaly")

ALERT_COLUMNS = ("id", "rule_id", "rule_version", "device_id", "kind", "measure", "severity", "state", "started_at",
                 "fired_at", "resolved_at", "value", "limit", "last_value", "last_seen_at", "lead_minutes",
                 "predicted_at", "message", "labels")


class _Laps:
    """Seconds spent per step of a rule's pass (kept in ops.alert_runs.details)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(self.seconds.get(step, 0.0) + now - self._last, 4)
        self._last = now


def _ts(x: float | None) -> datetime | None:
    if x is None or not np.isfinite(x):
        return None
    return datetime.fromtimestamp(round(float(x), 6), UTC)


def _epoch(ts: datetime | None) -> float:
    return ts.timestamp() if ts is not None else np.nan


def _float(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def rule_from_definition(definition: dict) -> Rule:
    """A :class:`Rule` back from its ``ops.alert_rules.definition`` (to resolve alerts of a rule
    that is no longer in the file)."""
    known = {f.name for f in fields(Rule)}
    d = {k: v for k, v in definition.items() if k in known}   # a definition written by an older version
    d["scope"] = Scope(**{k: tuple(v) for k, v in d.get("scope", {}).items()})
    d["labels"] = tuple(sorted((d.get("labels") or {}).items()))
    return Rule(**d)


# ---------------------------------------------------------------- rules in the warehouse
def sync_rules(conn, ruleset: RuleSet) -> dict[str, int]:
    """Record the loaded rules in ``ops.alert_rules`` (a new row per new version), retire the rest."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s, 0)", (_RULE_LOCK,))
        new = 0
        for r in ruleset.rules:
            cur.execute(
                "insert into ops.alert_rules (rule_id, version, kind, measure, severity, definition, source_file,"
                " file_version, is_current) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " on conflict (rule_id, version) do update set is_current = excluded.is_current,"
                " retired_at = case when excluded.is_current then null else now() end,"
                " source_file = excluded.source_file, file_version = excluded.file_version"
                " where ops.alert_rules.is_current is distinct from excluded.is_current"
                " or ops.alert_rules.file_version is distinct from excluded.file_version",
                (r.id, r.version, r.kind, r.measure, r.severity, json.dumps(r.definition()), ruleset.source,
                 ruleset.version, r.enabled))
            new += cur.rowcount
        cur.execute("update ops.alert_rules set is_current = false, retired_at = now()"
                    " where is_current and not ((rule_id, version) in (select * from unnest(%s::text[], %s::text[])))",
                    ([r.id for r in ruleset.rules], [r.version for r in ruleset.rules]))
        retired = cur.rowcount
    return {"changed": new, "retired": retired}


# ---------------------------------------------------------------- one rule
class _Pass:
    """What one rule's pass needs besides the rule: the clock, receivers, lookups, the pass's
    snapshot of stage, and its new readings (read once for every rule that continues from an
    earlier pass)."""

    def __init__(self, conn, as_of: datetime, settings: Settings, units: dict[str, str],
                 rcv: list[Receiver]):
        self.conn = conn
        self.as_of = as_of
        self.settings = settings
        self.units = units
        self.receivers = rcv
        self.external_url = external_url(settings)
        self.start = as_of - timedelta(minutes=settings.alert_lookback_minutes)
        self.through: datetime | None = None
        self.shared_readings: str | None = None

    def prepare(self, rules: tuple[Rule, ...]) -> dict[str, Any]:
        """Take the snapshot (the newest ``_ingested_at`` in stage: every rule reads up to it) and read
        the readings ingested since the earliest progress of the reading rules into one temporary
        table they share."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("select max(_ingested_at) from stage.stg_sensor_readings")
            self.through = cur.fetchone()[0]
            cur.execute("select rule_id, rule_version, ingested_through from ops.alert_progress")
            progress = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
            afters = [progress[r.id][1] for r in rules if r.kind in READING_KINDS and r.id in progress
                      and progress[r.id][0] == r.version and progress[r.id][1] is not None]
            if not afters or self.through is None:
                return {"shared_readings": 0}
            measures = sorted({r.measure for r in rules if r.kind in READING_KINDS})
            cur.execute("drop table if exists _alert_new_readings")
            cur.execute("create temp table _alert_new_readings on commit preserve rows as"
                        " select device_id, measure_name, time, value, _ingested_at from stage.stg_sensor_readings"
                        " where _ingested_at > %s and _ingested_at <= %s and measure_name = any(%s)",
                        (min(afters), self.through, measures))
            rows = cur.rowcount
            cur.execute("analyze _alert_new_readings")
        self.shared_readings = "_alert_new_readings"
        return {"shared_readings": rows}

    def window(self, cur, rule: Rule) -> tuple[signals.Window, datetime | None]:
        """The rule's window (its progress read under the rule's lock) and its previous as_of."""
        cur.execute("select rule_version, ingested_through, as_of from ops.alert_progress where rule_id = %s",
                    (rule.id,))
        row = cur.fetchone()
        # a new or changed rule (its scope may reach new devices) reads its look-back by time once
        after = row[1] if row and row[0] == rule.version else None
        previous_as_of = row[2] if row and row[0] == rule.version else None
        shared = (self.shared_readings if rule.kind == "no_data" or (after is not None and rule.kind in READING_KINDS)
                  else None)
        return signals.Window(self.as_of, self.start, after, self.through, shared), previous_as_of

    def save_progress(self, cur, rule: Rule) -> None:
        cur.execute(
            "insert into ops.alert_progress (rule_id, rule_version, ingested_through, as_of)"
            " values (%s, %s, %s, %s) on conflict (rule_id) do update set rule_version = excluded.rule_version,"
            " ingested_through = case when ops.alert_progress.rule_version = excluded.rule_version"
            "     then greatest(ops.alert_progress.ingested_through, excluded.ingested_through)"
            "     else excluded.ingested_through end,"
            " as_of = greatest(ops.alert_progress.as_of, excluded.as_of), updated_at = now()",
            (rule.id, rule.version, self.through, self.as_of))

    def close(self) -> None:
        if self.shared_readings:
            self.conn.execute("drop table if exists _alert_new_readings")
            self.conn.commit()


def _device_info(cur, device_ids: list[str]) -> dict[str, dict]:
    if not device_ids:
        return {}
    cur.execute("select device_id, kind, building, floor, room from stage.dim_devices where device_id = any(%s)",
                (device_ids,))
    return {r[0]: {"kind": r[1], "building": r[2], "floor": r[3], "room": r[4]} for r in cur.fetchall()}


def _load_states(cur, rule: Rule) -> pd.DataFrame:
    """The machine of every device of the rule, indexed by device (times in epoch seconds)."""
    cur.execute("select device_id, phase, alert_id, extract(epoch from started_at)::float8,"
                " extract(epoch from clear_since)::float8, extract(epoch from last_time)::float8,"
                " extract(epoch from ref_time)::float8 from ops.alert_state where rule_id = %s", (rule.id,))
    return pd.DataFrame(cur.fetchall(), columns=["device_id", "phase", "alert_id", "started_at", "clear_since",
                                                 "last_time", "ref_time"]).set_index("device_id")


def _copy_rows(cur, table: str, columns: tuple[str, ...], rows: list[tuple], like: str) -> None:
    cur.execute(f"create temp table if not exists {table} (like {like} including defaults) on commit drop")
    cur.execute(f"truncate {table}")
    cols = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f"copy {table} ({cols}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)


def evaluate_rule(p: _Pass, rule: Rule) -> dict[str, Any]:
    """One rule's pass (its own transaction); returns what it saw and did."""
    tick = time.perf_counter()
    laps = _Laps()
    out: dict[str, Any] = {"observations": 0, "transitions": {}, "notifications": 0, "steps": laps.seconds}
    conn = p.conn
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", (_RULE_LOCK, rule.id))
        if rule.kind == "forecast" and not _exists(cur, "ml.predictions"):
            out["skipped"] = "ml.predictions does not exist yet (no forecast has run)"
            return out
        window, previous_as_of = p.window(cur, rule)
        if rule.kind in ("no_data", "forecast") and previous_as_of is not None and p.as_of <= previous_as_of:
            out["skipped"] = "an evaluation as of this time or later already ran"
            return out
        laps("progress")
        obs = signals.observe(cur, rule, window, list(p.units))
        laps("observe")

        loaded = _load_states(cur, rule)
        # a reading older than its machine's newest observation came late: the machine has moved on
        known_last = obs["device_id"].map(loaded["last_time"]).to_numpy(np.float64)
        late = np.isfinite(known_last) & (obs["t"].to_numpy() <= known_last)
        if late.any():
            out["late_observations"] = int(late.sum())
            obs = obs[~late].reset_index(drop=True)
        out["observations"] = len(obs)
        # devices with an open alert that left the scope (registry edit or rule edit)
        scope, scope_params = signals.scope_sql(rule, active_only=rule.kind == "no_data")
        cur.execute(f"select st.device_id from ops.alert_state st where st.rule_id = %(rule_id)s and st.phase > 0"
                    f" and st.device_id not in ({scope})", {"rule_id": rule.id, **scope_params})
        exits = sorted({r[0] for r in cur.fetchall()} - set(obs["device_id"]))
        laps("load_state")

        devices = sorted(set(obs["device_id"]) | set(exits))
        if not devices:
            p.save_progress(cur, rule)
            out["seconds"] = round(time.perf_counter() - tick, 4)
            return out
        index = {d: i for i, d in enumerate(devices)}
        loaded = loaded.reindex(devices)
        states = machine.States(
            phase=pd.to_numeric(loaded["phase"]).fillna(0).to_numpy(np.int8),
            started_at=loaded["started_at"].to_numpy(np.float64),
            clear_since=loaded["clear_since"].to_numpy(np.float64),
            last_time=loaded["last_time"].to_numpy(np.float64))
        prior_alert = pd.to_numeric(loaded["alert_id"]).fillna(-1).to_numpy(np.int64)
        ref_time = loaded["ref_time"].to_numpy(np.float64)
        dev_idx = obs["device_id"].map(index).to_numpy(np.int64)
        observations = machine.Observations(
            device=dev_idx, time=obs["t"].to_numpy(), event_time=obs["event_t"].to_numpy(),
            breach=obs["breach"].to_numpy(), clear=obs["clear"].to_numpy(),
            value=obs["value"].to_numpy(), detail=obs["detail"].to_numpy())
        # no_data: the silence is the condition itself (its `for`); the machine adds no wait
        for_s = 0.0 if rule.kind == "no_data" else rule.for_s
        max_gap = np.inf if rule.kind == "no_data" else rule.max_gap_s
        before = machine.States(states.phase.copy(), states.started_at.copy(), states.clear_since.copy(),
                                states.last_time.copy())
        tr = machine.run(states, observations, for_s, rule.keep_firing_s, max_gap)

        # the exits: firing alerts resolve, pending ones are cancelled, at the evaluation time
        exit_rows = [index[d] for d in exits if states.phase[index[d]] != machine.INACTIVE]
        exit_what = ["resolve" if states.phase[i] == machine.FIRING else "cancel" for i in exit_rows]
        for i in exit_rows:
            states.phase[i] = machine.INACTIVE
            states.started_at[i] = states.clear_since[i] = np.nan

        if rule.kind == "no_data":   # the newest reading of a silent device (its firing alert resolves after it)
            ref = obs["ref_t"].to_numpy()
            keep = np.isfinite(ref)
            ref_time[dev_idx[keep]] = ref[keep]
        laps("machine")

        written = _write(p, cur, rule, devices, before, states, prior_alert, tr, exit_rows, exit_what, ref_time,
                         laps)
        out["transitions"] = dict(Counter(tr.what.tolist()) + Counter(exit_what))
        out["notifications"] = written
        p.save_progress(cur, rule)
    out["seconds"] = round(time.perf_counter() - tick, 4)
    return out


def _exists(cur, table: str) -> bool:
    cur.execute("select to_regclass(%s)", (table,))
    return cur.fetchone()[0] is not None


def _new_alert(rule: Rule, alert_id: int, device_id: str, labels: dict) -> dict:
    return {"id": alert_id, "rule_id": rule.id, "rule_version": rule.version, "device_id": device_id,
            "kind": rule.kind, "measure": rule.measure, "severity": rule.severity, "state": "pending",
            "started_at": None, "fired_at": None, "resolved_at": None, "value": None, "limit": rule.limit,
            "last_value": None, "last_seen_at": None, "lead_minutes": None, "predicted_at": None,
            "labels": labels}


def _write(p: _Pass, cur, rule: Rule, devices: list[str], before: machine.States, states: machine.States,
           prior_alert: np.ndarray,
           tr: machine.Transitions, exit_rows: list[int], exit_what: list[str], ref_time: np.ndarray,
           laps: _Laps) -> int:
    """Alerts, outbox rows and machine state of one rule's pass; returns the outbox rows written.

    Only the devices with a transition go through Python one by one (an alert row changes only at
    its transitions); the machine state is written in one statement."""
    changed_rows = sorted(set(tr.device.tolist()) | set(exit_rows))
    info = _device_info(cur, [devices[i] for i in changed_rows])
    existing: dict[int, dict] = {}
    existing_ids = [int(prior_alert[i]) for i in changed_rows if prior_alert[i] >= 0]
    if existing_ids:
        cur.execute(f"select {', '.join(chr(34) + c + chr(34) for c in ALERT_COLUMNS)}"
                    " from ops.alert_events where id = any(%s)", (existing_ids,))
        for row in cur.fetchall():
            existing[row[0]] = dict(zip(ALERT_COLUMNS, row, strict=True))
    n_new = int((tr.what == machine.START).sum())
    new_ids: list[int] = []
    if n_new:
        cur.execute("select nextval(pg_get_serial_sequence('ops.alert_events', 'id')) from generate_series(1, %s)",
                    (n_new,))
        new_ids = [r[0] for r in cur.fetchall()]
    laps("load_alerts")
    unit = p.units.get(rule.measure or "", "")
    new_alerts: list[dict] = []
    notes: list[tuple[dict, str]] = []
    current: dict[int, dict | None] = {i: existing.get(int(prior_alert[i])) for i in changed_rows}

    def finish(alert: dict, device: dict) -> dict:
        alert["message"] = notify.message(rule, alert, unit, device)
        return alert

    next_new = iter(new_ids)
    for k in range(len(tr)):
        i = int(tr.device[k])
        device_id = devices[i]
        dev = info.get(device_id, {})
        at, value, detail = _ts(tr.at[k]), _float(tr.value[k]), _float(tr.detail[k])
        alert = current[i]
        what = tr.what[k]
        if what == machine.START:
            alert = _new_alert(rule, next(next_new), device_id, notify.labels(rule, device_id, dev))
            alert.update(started_at=at, value=value, last_value=value, last_seen_at=at, detail=detail)
            new_alerts.append(alert)
        elif alert is None:  # pragma: no cover - the machine only fires / ends what it started
            raise RuntimeError(f"rule {rule.id}, device {device_id}: {what} without an open alert")
        else:
            alert.update(last_value=value, last_seen_at=at, detail=detail)
        if rule.kind == "no_data":
            alert["last_reading_at"] = _ts(detail)
        if what == machine.FIRE:
            alert.update(state="firing", fired_at=at, value=value)
            if rule.kind == "forecast" and detail is not None:
                alert.update(lead_minutes=detail, predicted_at=at + timedelta(minutes=detail))
            notes.append((dict(finish(alert, dev)), "firing"))
        elif what in (machine.CANCEL, machine.RESOLVE):
            alert.update(state="resolved", resolved_at=at)
            if rule.kind == "no_data":
                alert["resolution"] = f"readings again from {at:%Y-%m-%d %H:%M:%S} UTC"
            if what == machine.RESOLVE:
                notes.append((dict(finish(alert, dev)), "resolved"))
            alert = None
        current[i] = alert
    for i, what in zip(exit_rows, exit_what, strict=True):
        alert = current[i]
        if alert is None:
            continue
        alert.update(state="resolved", resolved_at=p.as_of, resolution="the device left the rule's scope")
        if what == "resolve":
            notes.append((dict(finish(alert, info.get(devices[i], {}))), "resolved"))
        current[i] = None
    laps("transitions")

    final = {a["id"]: finish(a, info.get(a["device_id"], {})) for a in [*existing.values(), *new_alerts]}
    updates = [a for a in final.values() if a["id"] in existing]
    inserts = [a for a in final.values() if a["id"] not in existing]

    def row(a: dict) -> tuple:
        return tuple(json.dumps(a["labels"]) if c == "labels" else a.get(c) for c in ALERT_COLUMNS)

    # updates first: an alert resolved in this pass frees its rule x device for a new one
    if updates:
        _copy_rows(cur, "_alert_updates", ALERT_COLUMNS, [row(a) for a in updates], "ops.alert_events")
        sets = ", ".join(f'"{c}" = u."{c}"' for c in ALERT_COLUMNS if c != "id")
        cur.execute(f"update ops.alert_events e set {sets}, updated_at = now() from _alert_updates u"
                    " where e.id = u.id")
    if inserts:
        _copy_rows(cur, "_alert_inserts", ALERT_COLUMNS, [row(a) for a in inserts], "ops.alert_events")
        cols = ", ".join(f'"{c}"' for c in ALERT_COLUMNS)
        cur.execute(f"insert into ops.alert_events ({cols}) select {cols} from _alert_inserts order by id")
    laps("write_alerts")

    # the outbox: one row per transition and receiver, in the transaction of the transition
    written = 0
    for alert, transition in notes:
        for r in p.receivers:
            key = notify.idempotency_key(alert["id"], transition, r.name)
            body = notify.payload(rule, alert, transition, r.name, r.url, p.external_url)
            cur.execute("insert into ops.alert_notifications (alert_id, transition, receiver, idempotency_key, payload)"
                        " values (%s, %s, %s, %s, %s) on conflict do nothing",
                        (alert["id"], transition, r.name, key, json.dumps(body)))
            written += cur.rowcount
    laps("write_outbox")

    alert_ids = np.where(prior_alert >= 0, prior_alert, -1)
    for i in changed_rows:
        alert_ids[i] = current[i]["id"] if current[i] else -1
    # The state is written where the machine moved, and for pending machines (their gap check needs
    # their newest observation). A machine that did not move keeps the newest observation it was
    # written with: an older reading arriving late is skipped against it, and an observation seen
    # again leaves an unmoved machine as it is.
    changed = np.zeros(len(devices), bool)
    changed[changed_rows] = True
    moved = (changed | (states.phase != before.phase) | (states.phase == machine.PENDING)
             | (alert_ids != prior_alert) | ~_same(states.started_at, before.started_at)
             | ~_same(states.clear_since, before.clear_since))
    keep = np.flatnonzero(moved)

    def floats(a: np.ndarray) -> list:
        return [None if not np.isfinite(x) else float(x) for x in a[keep]]

    cur.execute(
        "insert into ops.alert_state (rule_id, device_id, phase, alert_id, started_at, clear_since, last_time, ref_time)"
        " select %s, d, ph, a::bigint, to_timestamp(s), to_timestamp(c), to_timestamp(l), to_timestamp(r)"
        " from unnest(%s::text[], %s::smallint[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],"
        "             %s::float8[]) as u(d, ph, a, s, c, l, r)"
        " on conflict (rule_id, device_id) do update set phase = excluded.phase, alert_id = excluded.alert_id,"
        " started_at = excluded.started_at, clear_since = excluded.clear_since, last_time = excluded.last_time,"
        " ref_time = excluded.ref_time, updated_at = now()",
        (rule.id, [devices[i] for i in keep], states.phase[keep].tolist(),
         floats(np.where(alert_ids >= 0, alert_ids, np.nan)), floats(states.started_at), floats(states.clear_since),
         floats(states.last_time), floats(ref_time)))
    laps("write_state")
    return written


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def close_rule(p: _Pass, rule: Rule, reason: str) -> dict[str, int]:
    """Resolve the open alerts of a rule that was removed or disabled, and forget its state."""
    resolved = notified = 0
    with p.conn.transaction(), p.conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", (_RULE_LOCK, rule.id))
        cur.execute(f"select {', '.join(chr(34) + c + chr(34) for c in ALERT_COLUMNS)} from ops.alert_events"
                    " where rule_id = %s and state in ('pending', 'firing')", (rule.id,))
        alerts = [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in cur.fetchall()]
        info = _device_info(cur, [a["device_id"] for a in alerts])
        unit = p.units.get(rule.measure or "", "")
        for a in alerts:
            was_firing = a["state"] == "firing"
            a.update(state="resolved", resolved_at=p.as_of, resolution=reason)
            a["message"] = notify.message(rule, a, unit, info.get(a["device_id"], {}))
            cur.execute("update ops.alert_events set state = 'resolved', resolved_at = %s, message = %s,"
                        " updated_at = now() where id = %s", (p.as_of, a["message"], a["id"]))
            resolved += 1
            if was_firing:
                for r in p.receivers:
                    body = notify.payload(rule, a, "resolved", r.name, r.url, p.external_url)
                    cur.execute("insert into ops.alert_notifications (alert_id, transition, receiver, idempotency_key,"
                                " payload) values (%s, 'resolved', %s, %s, %s) on conflict do nothing",
                                (a["id"], r.name, notify.idempotency_key(a["id"], "resolved", r.name), json.dumps(body)))
                    notified += cur.rowcount
        for table in ("alert_state", "alert_progress", "alert_baselines"):
            cur.execute(f"delete from ops.{table} where rule_id = %s", (rule.id,))
    return {"resolved": resolved, "notifications": notified}


# ---------------------------------------------------------------- the pass
def load_checked_rules(conn, path=None, settings: Settings | None = None) -> tuple[RuleSet, dict[str, str]]:
    """The rule file, checked against the data contract's measures in the warehouse."""
    units = measure_units(conn)
    ruleset = load_rules(path, units, FORECAST_MEASURES, FORECAST_HORIZON_MINUTES, settings=settings)
    return ruleset, units


def evaluate(as_of: datetime | None = None, settings: Settings | None = None, rules_path=None,
             ruleset: RuleSet | None = None) -> dict[str, Any]:
    """Evaluate every rule as of ``as_of`` (default now); returns the summary stored in ``ops.alert_runs``."""
    s = settings or get_settings()
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    started_at = datetime.now(UTC)
    tick = time.perf_counter()
    rcv = receivers(s)
    with pg_connect("transformer", settings=s) as conn:
        # the passes' plans are estimated expensive (large stage tables) but run short: JIT
        # compilation alone cost 2-3 s per query on a busy machine
        conn.execute("set jit = off")
        conn.commit()
        ensure_schema(conn, s)
        if ruleset is None:
            ruleset, units = load_checked_rules(conn, rules_path, s)
        else:
            units = measure_units(conn)
            check_measures(ruleset, units, FORECAST_MEASURES, FORECAST_HORIZON_MINUTES)
        conn.commit()
        synced = sync_rules(conn, ruleset)
        p = _Pass(conn, as_of, s, units, rcv)
        tick_prepare = time.perf_counter()
        shared = p.prepare(ruleset.enabled)
        shared["seconds"] = round(time.perf_counter() - tick_prepare, 4)
        per_rule: dict[str, Any] = {}
        for rule in ruleset.enabled:
            per_rule[rule.id] = evaluate_rule(p, rule)
        p.close()
        # rules no longer in force: their open alerts resolve
        in_force = {r.id for r in ruleset.enabled}
        with conn.cursor() as cur:
            cur.execute("select distinct on (e.rule_id) e.rule_id, r.definition from ops.alert_events e"
                        " join ops.alert_rules r on r.rule_id = e.rule_id and r.version = e.rule_version"
                        " where e.state in ('pending', 'firing') order by e.rule_id, e.started_at desc")
            orphans = [(rid, d) for rid, d in cur.fetchall() if rid not in in_force]
        conn.commit()
        disabled = {r.id for r in ruleset.rules if not r.enabled}
        for rule_id, definition in orphans:
            rule = rule_from_definition(definition)
            reason = "the rule was disabled" if rule_id in disabled else "the rule was removed from the rule file"
            per_rule[rule_id] = {"closed": close_rule(p, rule, reason)}
        transitions = Counter()
        for r in per_rule.values():
            transitions.update(r.get("transitions", {}))
        summary = {
            "as_of": as_of, "rule_file": ruleset.source, "file_version": ruleset.version,
            "rules": len(ruleset.enabled), "rules_changed": synced,
            "observations": sum(r.get("observations", 0) for r in per_rule.values()),
            "transitions": dict(transitions),
            "notifications": sum(r.get("notifications", 0) + r.get("closed", {}).get("notifications", 0)
                                 for r in per_rule.values()),
            "per_rule": per_rule, "prepare": shared, "seconds": round(time.perf_counter() - tick, 3),
        }
        conn.execute(
            "insert into ops.alert_runs (as_of, rule_file, file_version, rules, observations, transitions,"
            " notifications, details, seconds, started_at, finished_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
            (as_of, ruleset.source, ruleset.version, summary["rules"], summary["observations"],
             json.dumps(summary["transitions"]), summary["notifications"], json.dumps(per_rule, default=str),
             json.dumps({"total": summary["seconds"]}), started_at))
        conn.commit()
    log.info("alerts as of %s: %d rules, %d observations, transitions %s, %d notifications queued (%.2f s)",
             as_of, summary["rules"], summary["observations"], summary["transitions"], summary["notifications"],
             summary["seconds"])
    return summary
