"""Server-side generation of a raw workload (contract of docs/contracts.md §2) for the benchmark:
``sensors`` air-quality devices reading once a minute and ``users`` watches with heart rate and
steps every minute and one night of sleep a day. Generated with generate_series inside
PostgreSQL, so that writing 30 days costs seconds, not the benchmark's time."""

from __future__ import annotations

from datetime import datetime

AIR_QUALITY = """
insert into raw.air_quality (_id, devid, ts, ts_utc, iaq, temperature, humidity, pressure, voc, co2, iaq_accuracy,
                             _ingested_at, _dlt_load_id)
select 'aq:' || dev || ':' || extract(epoch from t)::bigint, dev,
       to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), t,
       100 + 60 * sin(extract(epoch from t) / 7200 + d), 21 + 2 * sin(extract(epoch from t) / 43200),
       45 + mod(d, 10), 101.3, 0.5 + mod(d, 5) / 10.0, 600 + 200 * sin(extract(epoch from t) / 3600), 3,
       t + interval '5 seconds', 'bench-' || to_char(t, 'YYYYMMDDHH24')
from generate_series(1, %(sensors)s) as d
cross join lateral (select 'aq' || lpad(d::text, 4, '0') as dev) as n
cross join generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute', interval '1 minute') as t
"""

BUCKETS = """
insert into raw.{kind}
select '{prefix}:' || w || ':' || extract(epoch from b)::bigint, w, b, b + interval '{size}', {samples},
       b + interval '{size}' + interval '5 seconds', 'bench-' || to_char(b, 'YYYYMMDDHH24')
from generate_series(1, %(users)s) as u
cross join lateral (select 'w' || lpad(u::text, 4, '0') as w) as n
cross join generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '{size}', interval '{size}') as b;
insert into raw.{kind}__metrics
select p._id, i, p.created_at + i * interval '1 minute', {value}, {extra}
       p._ingested_at, p._dlt_load_id
from raw.{kind} as p
cross join generate_series(0, {samples} - 1) as i
where p.created_at >= %(start)s and p.created_at < %(end)s
"""

SLEEPS = """
insert into raw.sleeps
select 'sl:' || w || ':' || extract(epoch from day)::bigint, w, day + interval '30 hours 30 minutes',
       day + interval '30 hours 45 minutes', 1, day + interval '30 hours 45 minutes 5 seconds',
       'bench-' || to_char(day, 'YYYYMMDD')
from generate_series(1, %(users)s) as u
cross join lateral (select 'w' || lpad(u::text, 4, '0') as w) as n
cross join generate_series(%(start)s::timestamptz - interval '1 day', %(end)s::timestamptz - interval '31 hours',
                           interval '1 day') as day;
insert into raw.sleeps__metrics
select _id, 0, created_at - interval '7 hours 30 minutes', created_at, 27000000, _ingested_at, _dlt_load_id
from raw.sleeps where created_at >= %(start)s and created_at < %(end)s + interval '1 day'
  and _id not in (select _parent_id from raw.sleeps__metrics)
"""

REGISTRY = """
insert into raw.users
select u, u, 18 + mod(i * 7, 60), 170, case when mod(i, 2) = 0 then 'female' else 'male' end, u || '@example.org',
       null, %(start)s::timestamptz - interval '90 days', jsonb_build_array('w' || lpad(i::text, 4, '0')),
       case when mod(i, 2) = 0 then %(start)s::timestamptz - interval '60 days' end, null, null,
       %(start)s::timestamptz - interval '90 days', 'bench-registry'
from generate_series(1, %(users)s) as i cross join lateral (select 'u' || lpad(i::text, 4, '0') as u) as n;
insert into raw.devices (_id, device_id, kind, owner_user_id, location_description, manufacturer_name, model,
                         installed_at, active, history, _ingested_at, _dlt_load_id)
select w, w, 'watch', 'u' || lpad(i::text, 4, '0'), null, 'Acme', 'w1', %(start)s::timestamptz - interval '90 days',
       true, '[]'::jsonb, %(start)s::timestamptz - interval '90 days', 'bench-registry'
from generate_series(1, %(users)s) as i cross join lateral (select 'w' || lpad(i::text, 4, '0') as w) as n
union all
select a, a, 'air_quality', null, 'room ' || i, 'Bosch', 'bme680', %(start)s::timestamptz - interval '90 days', true,
       '[]'::jsonb, %(start)s::timestamptz - interval '90 days', 'bench-registry'
from generate_series(1, %(sensors)s) as i cross join lateral (select 'aq' || lpad(i::text, 4, '0') as a) as n
"""


def generate(conn, sensors: int, users: int, start: datetime, end: datetime, registry: bool = True) -> None:
    """Readings and wearable data with timestamps in [start, end); ingestion 5 s after each."""
    params = {"sensors": sensors, "users": users, "start": start, "end": end}
    scripts = [REGISTRY] if registry else []
    scripts += [AIR_QUALITY,
                BUCKETS.format(kind="heart_rates", prefix="hr", size="4 hours", samples=240,
                               value="55 + 30 * random()", extra="3,"),
                BUCKETS.format(kind="steps", prefix="st", size="15 minutes", samples=15,
                               value="(random() * 40)::int", extra=""),
                SLEEPS]
    with conn.cursor() as cur:
        for script in scripts:
            for statement in script.split(";\n"):
                if statement.strip():
                    cur.execute(statement, params)
    conn.commit()
