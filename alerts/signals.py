"""What each kind of rule observes, in SQL: one row per new observation of each device in scope.

Reading kinds (threshold, rate, anomaly) observe the readings of the rule's measure that reached
stage since the rule's last pass: those with ``_ingested_at`` in (the rule's progress, the pass's
snapshot]. They are read through stage's ``_ingested_at`` index, where rows written together lie
together, so a pass costs what is new, not what is stored; what a rate or an anomaly needs from
before is one probe of the (device_id, measure_name, time) key per device. This relies on stage receiving readings in capture order (the
extract commits in capture order; docs/alerts.md, Evaluation). A rule's first pass reads the
readings since the look-back (``ALERT_LOOKBACK_MINUTES``) by time instead. A reading is evaluated
when it reaches stage, whatever the evaluation time (``as_of`` is the clock of no_data and
forecast rules and of the look-back).

Forecast rules observe each device's newest forecast; no_data rules each device's silence at the
evaluation time.

Each query returns ``device_id, t, event_t, value, detail, breach, clear, ref_t`` (times in epoch
seconds); ``breach`` / ``clear`` may be null (not enough data to tell: neither).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from alerts.measures import FORECAST_HORIZON_MINUTES
from alerts.rules import Rule

READINGS = "stage.stg_sensor_readings"
DEVICES = "stage.dim_devices"
PREDICTIONS = "ml.predictions"
COLUMNS = ["device_id", "t", "event_t", "value", "detail", "breach", "clear", "ref_t"]


@dataclass(frozen=True)
class Window:
    """What a rule's pass reads.

    ``after`` is the rule's progress (readings ingested after it are new; None: its first pass,
    which reads by time from ``start``); ``through`` the pass's snapshot of stage (the newest
    ``_ingested_at``; None: stage is empty); ``shared`` a temporary table holding the readings
    ingested in (earliest progress of the rules, ``through``] (``evaluate._Pass.prepare``)."""

    as_of: datetime
    start: datetime
    after: datetime | None
    through: datetime | None
    shared: str | None = None

    def params(self, rule: Rule) -> dict:
        return {"rule_id": rule.id, "measure": rule.measure, "as_of": self.as_of, "start": self.start,
                "after": self.after, "through": self.through}


def scope_sql(rule: Rule, active_only: bool = False) -> tuple[str, dict]:
    """``select device_id from stage.dim_devices where <the rule's scope>`` and its parameters."""
    conds, params = [], {}
    for column, values in (("kind", rule.scope.kinds), ("building", rule.scope.buildings),
                           ("floor", rule.scope.floors), ("room", rule.scope.rooms),
                           ("device_id", rule.scope.devices)):
        if values:
            conds.append(f"d.{column} = any(%(scope_{column})s)")
            params[f"scope_{column}"] = list(values)
    if active_only:
        conds.append("d.is_active is not false")
    return f"select d.device_id from {DEVICES} d where {' and '.join(conds) or 'true'}", params


def _new_readings(rule: Rule, w: Window) -> tuple[str, dict]:
    """CTEs ``scope`` and ``new``: the rule's new readings of the devices in scope."""
    scope, params = scope_sql(rule)
    if w.through is None:
        source, where = READINGS, "false"
    elif w.after is not None:
        source = w.shared or READINGS
        where = "r._ingested_at > %(after)s and r._ingested_at <= %(through)s"
    else:
        source = READINGS
        where = "r.time > %(start)s and r._ingested_at <= %(through)s"
    return f"""
scope as ({scope}),
new as (
    select r.device_id, r.time, r.value
    from {source} r
    join scope s on s.device_id = r.device_id
    where r.measure_name = %(measure)s and {where}
)""", params


def _limit_test(rule: Rule, expr: str) -> tuple[str, str]:
    """(breach, clear) SQL of ``expr`` against the rule's limit and its hysteresis band
    (parameters ``limit`` and ``clear_limit``, see :func:`_limit_params`)."""
    if rule.below is not None:
        return f"{expr} < %(limit)s", f"{expr} >= %(clear_limit)s"
    return f"{expr} > %(limit)s", f"{expr} <= %(clear_limit)s"


def _limit_params(rule: Rule) -> dict:
    if rule.below is not None:
        return {"limit": rule.below, "clear_limit": rule.below + rule.hysteresis}
    return {"limit": rule.above, "clear_limit": rule.above - rule.hysteresis}


def threshold_sql(rule: Rule, w: Window) -> tuple[str, dict]:
    cte, params = _new_readings(rule, w)
    params.update(_limit_params(rule))
    breach, clear = _limit_test(rule, "value")
    return f"""with {cte}
select device_id, extract(epoch from time)::float8 as t, extract(epoch from time)::float8 as event_t,
       value, null::float8 as detail, {breach} as breach, {clear} as clear, null::float8 as ref_t
from new""", params


def rate_sql(rule: Rule, w: Window) -> tuple[str, dict]:
    """Change per minute between each new reading and the oldest reading of the ``over`` before it
    (one probe of stage's (device_id, measure_name, time) key per new reading; no reading in that
    span: no rate)."""
    cte, params = _new_readings(rule, w)
    rate = "((n.value - p.value) / (extract(epoch from n.time - p.time) / 60.0))"
    breach, clear = _limit_test(rule, rate)
    params.update(_limit_params(rule), over=rule.over_s)
    return f"""with {cte}
select n.device_id, extract(epoch from n.time)::float8 as t, extract(epoch from n.time)::float8 as event_t,
       {rate} as value, n.value as detail, {breach} as breach, {clear} as clear, null::float8 as ref_t
from new n
left join lateral (
    select q.time, q.value from {READINGS} q
    where q.device_id = n.device_id and q.measure_name = %(measure)s
      and q.time >= n.time - %(over)s * interval '1 second' and q.time < n.time
    order by q.time limit 1
) p on true""", params


def anomaly_sql(rule: Rule, w: Window) -> tuple[str, dict]:
    """Robust z-score of each new reading against the device's median and MAD over ``window``:
    z = (x - median) / (1.4826 MAD). Breach: |z| > z and |x - median| >= min_deviation, with at
    least min_points readings in the window; clear: |z| <= z - hysteresis (or the deviation is
    below min_deviation).

    The baseline of a device is computed over the window before its first new reading of the pass
    and kept in ``ops.alert_baselines``; the readings of the next window/6 (staggered per device
    between half and all of it) are judged against it, so a pass recomputes about a tenth of the
    devices instead of reading every device's window."""
    cte, params = _new_readings(rule, w)
    params.update(window=rule.window_s, refresh=rule.window_s / 6, min_points=rule.min_points, zlim=rule.z,
                  zclear=rule.z - rule.hysteresis, min_dev=rule.min_deviation)
    z = ("case when b.mad > 0 then (n.value - b.med) / (1.4826 * b.mad)"
         " when n.value = b.med then 0 else sign(n.value - b.med) * 'infinity'::float8 end")
    refresh = "%(refresh)s * (0.5 + (abs(hashtext(f.device_id)) %% 1000) / 2000.0) * interval '1 second'"
    return f"""with {cte},
firsts as (select device_id, min(time) as t0 from new group by device_id),
cached as (select device_id, window_end, n, med, mad from ops.alert_baselines where rule_id = %(rule_id)s),
stale as materialized (
    select f.device_id, f.t0 from firsts f left join cached c on c.device_id = f.device_id
    where c.device_id is null or f.t0 < c.window_end or f.t0 - c.window_end > {refresh}
),
fresh as materialized (
    select s.device_id, s.t0 as window_end, b.n, b.med,
           (select percentile_cont(0.5) within group (order by abs(x - b.med)) from unnest(b.vals) as x) as mad
    from stale s
    cross join lateral (
        select count(*)::int as n, percentile_cont(0.5) within group (order by q.value) as med,
               array_agg(q.value) as vals
        from {READINGS} q
        where q.device_id = s.device_id and q.measure_name = %(measure)s
          and q.time >= s.t0 - %(window)s * interval '1 second' and q.time < s.t0) b
),
saved as (
    insert into ops.alert_baselines (rule_id, device_id, window_end, n, med, mad)
    select %(rule_id)s, device_id, window_end, n, med, mad from fresh
    on conflict (rule_id, device_id) do update set window_end = excluded.window_end, n = excluded.n,
        med = excluded.med, mad = excluded.mad
),
base as (
    select device_id, n, med, mad from fresh
    union all
    select c.device_id, c.n, c.med, c.mad from cached c
    where c.device_id in (select device_id from firsts) and c.device_id not in (select device_id from fresh)
),
scored as (select n.device_id, n.time, n.value, b.n, b.med, {z} as z
           from new n left join base b on b.device_id = n.device_id)
select device_id, extract(epoch from time)::float8 as t, extract(epoch from time)::float8 as event_t,
       value, z as detail,
       case when n >= %(min_points)s then abs(z) > %(zlim)s and abs(value - med) >= %(min_dev)s end as breach,
       case when n >= %(min_points)s then abs(z) <= %(zclear)s or abs(value - med) < %(min_dev)s end as clear,
       null::float8 as ref_t
from scored""", params


def forecast_sql(rule: Rule, w: Window) -> tuple[str, dict]:
    """The newest forecast of each device in scope issued after the look-back start and the
    device's last evaluated forecast: its predicted values of the next ``within`` minutes; breach
    when one crosses the limit (detail: the first such horizon, the lead time in minutes). The
    newest ``<measure>~<horizon>`` row of each device is one probe of the predictions' key
    (device_id, time, measure_name); the rows of those forecasts are then read through the
    ``issued_at`` index, once per distinct issue time (a forecast cycle issues most devices at the
    same minute): one range scan instead of ``within`` key probes per device, which took 1.4-2.8 s
    of a 10,000-device pass. (When several forecasts of a device
    arrived since the last pass, the newest one is judged: the alert is about what the platform
    predicts now.) A device's unchanged forecast may be looked at again by the next pass: the
    machine leaves an inactive machine as it is for a forecast that does not breach, and skips
    one it has seen."""
    scope, params = scope_sql(rule)
    params.update(_limit_params(rule), within=int(rule.within_s // 60),
                  last_horizon=f"{rule.measure}~{FORECAST_HORIZON_MINUTES}",
                  horizon=FORECAST_HORIZON_MINUTES * 60.0)
    breach, clear = _limit_test(rule, "q.value")
    extreme = "min" if rule.below is not None else "max"
    return f"""with scope as ({scope}),
st as (select device_id, last_time from ops.alert_state where rule_id = %(rule_id)s),
latest as materialized (
    select s.device_id, l.issued_at
    from scope s
    cross join lateral (   -- the <measure>~<horizon> row of a forecast lies <horizon> after its issue
        select p.time - %(horizon)s * interval '1 second' as issued_at from {PREDICTIONS} p
        where p.device_id = s.device_id and p.measure_name = %(last_horizon)s
          and p.time <= %(as_of)s + %(horizon)s * interval '1 second'
        order by p.time desc limit 1) l
    left join st on st.device_id = s.device_id
    where l.issued_at > %(start)s and l.issued_at > coalesce(st.last_time, %(start)s) and l.issued_at <= %(as_of)s
),
horizons as (
    select h, %(measure)s || '~' || h as measure_name from generate_series(1, %(within)s) as g(h)
),
rows as (   -- the judged forecasts' rows: one index range per distinct issue time
    select q.device_id, q.issued_at, q.value, g.h
    from {PREDICTIONS} q
    join horizons g on g.measure_name = q.measure_name
    where q.issued_at = any(array(select distinct issued_at from latest))
      and q.time = q.issued_at + g.h * interval '1 minute'
),
judged as (
    select l.device_id, l.issued_at, {extreme}(q.value) as value,
           min(q.h) filter (where {breach})::float8 as detail, bool_or({breach}) as breach,
           bool_and({clear}) as clear
    from latest l
    join rows q on q.device_id = l.device_id and q.issued_at = l.issued_at
    group by l.device_id, l.issued_at
)
select device_id, extract(epoch from issued_at)::float8 as t, extract(epoch from issued_at)::float8 as event_t,
       value, detail, breach, clear, null::float8 as ref_t
from judged
where value is not null""", params


def _probe(device: str, agg: str, condition: str) -> str:
    """``agg`` (max / min) of the reading times of ``device`` over the measures that meet
    ``condition``: one index probe per measure on (device_id, measure_name, time)."""
    return (f"(select {agg}(x.t) from unnest(%(measures)s::text[]) as mn(name) cross join lateral"
            f" (select {agg}(r.time) as t from {READINGS} r where r.device_id = {device}"
            f" and r.measure_name = mn.name and {condition}) x)")


def no_data_sql(rule: Rule, w: Window, measures: list[str]) -> tuple[str, dict]:
    """The silence of each active device in scope at ``as_of``: does it have a reading (of the
    rule's measure, or of any measure) in the ``for`` before it? One index probe per device when it
    does (the first measure that has one ends the search); a silent device's newest reading is
    looked up to say since when. Devices that never sent a reading are watched only when the rule
    lists them by id. The alert starts when the silence reached ``for`` and resolves at the first
    reading after it."""
    scope, params = scope_sql(rule, active_only=True)
    params.update(measures=[rule.measure] if rule.measure else measures, silence=rule.for_s,
                  listed=list(rule.scope.devices))
    alive = ("exists (select 1 from unnest(%(measures)s::text[]) as mn(name) cross join lateral"
             f" (select 1 from {READINGS} r where r.device_id = s.device_id and r.measure_name = mn.name"
             "  and r.time > %(as_of)s - %(silence)s * interval '1 second' and r.time <= %(as_of)s limit 1) x)")
    # the pass's new readings (when the reading rules share them) spare the probe of most devices
    fresh = (f"select device_id, max(time) as t from {w.shared} where measure_name = any(%(measures)s)"
             " and time <= %(as_of)s group by device_id" if w.shared else
             "select null::text as device_id, null::timestamptz as t where false")
    return f"""with scope as ({scope}),
st as (select device_id, phase, ref_time from ops.alert_state where rule_id = %(rule_id)s),
fresh as ({fresh}),
seen as materialized (
    select s.device_id, st.phase, st.ref_time,
           case when f.t > %(as_of)s - %(silence)s * interval '1 second' then true else {alive} end as alive
    from scope s
    left join st on st.device_id = s.device_id
    left join fresh f on f.device_id = s.device_id
),
judged as materialized (
    select device_id, phase, ref_time, alive,
           case when not alive then {_probe('seen.device_id', 'max', 'r.time <= %(as_of)s')} end as last_seen,
           case when alive and phase = 2
                then {_probe('seen.device_id', 'min', 'r.time > seen.ref_time and r.time <= %(as_of)s')} end
               as back_at
    from seen
)
select device_id, extract(epoch from %(as_of)s::timestamptz)::float8 as t,
       extract(epoch from case
           when alive then coalesce(back_at, %(as_of)s::timestamptz)
           when last_seen is null then %(as_of)s::timestamptz
           else last_seen + %(silence)s * interval '1 second' end)::float8 as event_t,
       case when alive then 0 else extract(epoch from %(as_of)s - coalesce(last_seen, %(as_of)s)) / 60.0 end
           as value,
       extract(epoch from last_seen)::float8 as detail,
       not alive as breach, alive as clear,
       extract(epoch from last_seen)::float8 as ref_t
from judged
where alive or last_seen is not null or device_id = any(%(listed)s)""", params


def observe(cur, rule: Rule, w: Window, measures: list[str]) -> pd.DataFrame:
    """The rule's new observations as a DataFrame of :data:`COLUMNS`."""
    if rule.kind == "threshold":
        sql, params = threshold_sql(rule, w)
    elif rule.kind == "rate":
        sql, params = rate_sql(rule, w)
    elif rule.kind == "anomaly":
        sql, params = anomaly_sql(rule, w)
    elif rule.kind == "forecast":
        sql, params = forecast_sql(rule, w)
    elif rule.kind == "no_data":
        sql, params = no_data_sql(rule, w, measures)
    else:  # pragma: no cover - the rule parser admits only the kinds above
        raise ValueError(f"unknown rule kind {rule.kind!r}")
    cur.execute(sql, {**w.params(rule), **params})
    df = pd.DataFrame(cur.fetchall(), columns=COLUMNS)
    for col in ("t", "event_t", "value", "detail", "ref_t"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
    for col in ("breach", "clear"):
        df[col] = df[col].astype("boolean").fillna(False).astype(bool)
    return df
