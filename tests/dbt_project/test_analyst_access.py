"""What analysts read (issue 16): stage, agg, curated and ml, read-only, without personal fields,
every table and column commented, never gone during a rebuild, and seed 000's Grafana panel
(IAQ against iaq~5/10/15) returning values.

The warehouse is the dbt scenario of test_build.py, built by the real dbt project, plus a sensor
that stamps its readings at :14 s (as the simulator does) with forecasts on whole minutes.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from dbt_support import DAY, FIRST_LOAD_AT, fresh_warehouse, load_scenario
from raw_fixture import RawWriter

from dbt_project.runner import build
from iot_core.connections import pg_connect
from iot_core.settings import PROJECT_ROOT

ANALYST_SCHEMAS = ("stage", "agg", "curated", "ml")
# personal fields that must never be readable by analysts (docs/operations.md, analyst access)
PERSONAL_COLUMNS = {"email", "dob", "date_of_birth"}
TABLE_MODELS = ["dim_devices", "dim_users", "stg_device_history", "stg_sensor_measures", "curated_research_users",
                "agg_monthly_health_by_age_group"]
DASHBOARD = PROJECT_ROOT / "docker" / "grafana" / "dashboards" / "iot_overview.json"
AT_14 = DAY + timedelta(hours=14)  # the :14 s sensor's first minute


@pytest.fixture(scope="module")
def warehouse(wh):
    """The scenario, a sensor reading at :14 s for 30 minutes, forecasts on whole minutes, built."""
    from ml.schema import ensure_schema

    fresh_warehouse(wh)
    load_scenario(wh)
    with pg_connect("loader", settings=wh) as conn:
        w = RawWriter(conn, load_id="load-14s")
        w.device("aq14", "air_quality", FIRST_LOAD_AT, location="lab")
        w.air_quality([("aq14", (AT_14 + timedelta(minutes=i, seconds=14)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        [100.0 + i, 21.5, 45.0, 101.3, 0.5, 600.0, 3.0]) for i in range(30)], FIRST_LOAD_AT)
    with pg_connect("transformer", settings=wh) as conn:
        ensure_schema(conn)  # the real ml tables (the fixture made ml.predictions only)
        for minute in range(5, 30):
            t = AT_14 + timedelta(minutes=minute)
            for h in (5, 10, 15):
                conn.execute("insert into ml.predictions values (%s, 'aq14', %s, %s, 'ridge', '1', %s)",
                             (t, f"iaq~{h}", 90.0 + minute + h / 100, t - timedelta(minutes=h)))
    build(settings=wh)
    return wh


def q(settings, sql, *params, role="superuser"):
    with pg_connect(role, settings=settings) as conn:
        return conn.execute(sql, params).fetchall()


def analyst_relations(settings) -> list[str]:
    """Every table and view of the analyst's schemas (dbt's scratch relations aside)."""
    return [f"{s}.{n}" for s, n in q(settings, """
        select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p') and c.relname not like '%%__dbt_%%'
        order by 1, 2""", list(ANALYST_SCHEMAS))]


@pytest.fixture(scope="module")
def relations(warehouse) -> list[str]:
    """What the analyst reads once the warehouse is built (before any test rebuilds a model)."""
    return analyst_relations(warehouse)


def test_analysts_read_every_table_and_view_of_stage_agg_curated_and_ml(warehouse, relations):
    assert {"stage.dim_devices", "stage.stg_sensor_readings", "agg.agg_latest_reading", "curated.curated_research_users",
            "ml.predictions", "agg.agg_sensor_readings_minutely"} <= set(relations)
    with pg_connect("analyst", settings=warehouse, autocommit=True) as conn:
        for relation in relations:
            conn.execute(f"select * from {relation} limit 1").fetchall()
        for forbidden in ("select * from raw.users", "select * from ops.transform_watermarks"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("delete from stage.dim_users")


def test_analysts_see_no_personal_fields(warehouse):
    readable = q(warehouse, """
        select n.nspname, c.relname, a.attname
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.relkind in ('r', 'v', 'm', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
          and has_column_privilege(%s, c.oid, a.attnum, 'select')""", warehouse.analyst_user)
    assert readable, "the analyst reads nothing?"
    assert [r for r in readable if r[2] in PERSONAL_COLUMNS] == []
    assert not [r for r in readable if r[0] in ("raw", "raw_staging", "auth")]


def test_every_table_and_column_the_analyst_reads_has_a_comment(warehouse):
    missing_tables = q(warehouse, """
        select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p') and c.relname not like '%%__dbt_%%'
          and obj_description(c.oid, 'pg_class') is null""", list(ANALYST_SCHEMAS))
    missing_columns = q(warehouse, """
        select n.nspname || '.' || c.relname || '.' || a.attname
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p') and c.relname not like '%%__dbt_%%'
          and col_description(c.oid, a.attnum) is null""", list(ANALYST_SCHEMAS))
    assert missing_tables == [], " ".join(t for (t,) in missing_tables)
    assert missing_columns == [], " ".join(c for (c,) in missing_columns)


def _grafana_panel_sql(role_settings, panel_id: int, device: str, start, end) -> str:
    panel = next(p for p in json.loads(DASHBOARD.read_text())["panels"] if p["id"] == panel_id)
    sql = panel["targets"][0]["rawSql"]
    frame = f"'{start.isoformat()}'::timestamptz"
    until = f"'{end.isoformat()}'::timestamptz"
    return (sql.replace("$__timeFilter(time)", f"time between {frame} and {until}")
               .replace("$__timeFrom()", frame).replace("$__timeTo()", until).replace("$device", device))


@pytest.mark.parametrize("role", ["analyst", "api"])
def test_seed_000_grafana_panel_returns_readings_and_forecasts(warehouse, role):
    sql = _grafana_panel_sql(warehouse, 1, "aq14", AT_14, AT_14 + timedelta(minutes=30))
    rows = q(warehouse, sql, role=role)
    assert len(rows) == 30 + 15 - 15  # 30 minutes of readings; forecasts reach 15 minutes ahead within them
    both = [r for r in rows if r[1] is not None and r[2] is not None]
    assert len(both) == 25, rows  # minutes 5..29 have a reading and all three forecasts
    t, iaq, h5, h10, h15 = both[0]
    assert t == AT_14 + timedelta(minutes=5) and iaq == 105.0 and (h5, h10, h15) == (95.05, 95.1, 95.15)


# ------------------------------------------------------------------ nothing vanishes during a rebuild
def _relation_oids(settings) -> dict[str, int]:
    return dict(q(settings, """
        select n.nspname || '.' || c.relname, c.oid::int from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p') and c.relname not like '%%__dbt_%%'""",
                  list(ANALYST_SCHEMAS)))


def test_a_stage_build_keeps_every_relation_and_the_views_reading_it(warehouse):
    """iot_stage_transform builds stage only: the seed 004 views (reading dim_devices and
    stg_sensor_measures) used to be dropped in cascade until the next agg run."""
    before = _relation_oids(warehouse)
    counts = {r: q(warehouse, f"select count(*) from {r}")[0][0] for r in ("stage.dim_devices", "stage.dim_users")}
    build(select=TABLE_MODELS, settings=warehouse)
    assert _relation_oids(warehouse) == before  # same objects: rebuilt in place, nothing dropped
    assert {r: q(warehouse, f"select count(*) from {r}")[0][0] for r in counts} == counts
    assert q(warehouse, "select count(*) from agg.agg_latest_reading where device_id = 'aq14'",
             role="analyst")[0][0] == 7


class AnalystPoller(threading.Thread):
    """Reads every relation the analyst can read, round after round, and keeps every error."""

    def __init__(self, settings, relations: list[str]) -> None:
        super().__init__(daemon=True)
        self.settings, self.relations = settings, relations
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.queries = 0

    def run(self) -> None:
        with pg_connect("analyst", settings=self.settings, autocommit=True) as conn:
            # as DBeaver and Grafana do: no server-side prepared statements (a prepared `select *`
            # fails once its table changed columns, whatever the rebuild does)
            conn.prepare_threshold = None
            while not self.stop.is_set():
                for relation in self.relations:
                    try:
                        conn.execute(f"select * from {relation} limit 1").fetchall()
                    except psycopg.Error as e:
                        self.errors.append(f"{relation}: {e}")
                    self.queries += 1


def test_analysts_see_no_error_during_a_full_build(warehouse, relations):
    poller = AnalystPoller(warehouse, relations)
    poller.start()
    time.sleep(0.5)
    started = time.monotonic()
    build(settings=warehouse)  # every model and test, as the master DAG's dbt steps do
    build_seconds = time.monotonic() - started
    poller.stop.set()
    poller.join(30)
    assert poller.errors == []
    assert poller.queries > 10 * len(poller.relations), (poller.queries, build_seconds)


def test_a_column_change_recreates_the_dependent_views_in_the_same_transaction(warehouse):
    """A table model whose columns changed is swapped, and the views reading it come back in the
    same transaction with their comments and grants (here: dim_devices gained a column)."""
    with pg_connect("transformer", settings=warehouse, autocommit=True) as conn:
        conn.execute("alter table stage.dim_devices add column retired_flag boolean")
    comment = q(warehouse, "select obj_description('agg.agg_latest_reading'::regclass, 'pg_class')")[0][0]
    old_oid = _relation_oids(warehouse)["agg.agg_latest_reading"]
    poller = AnalystPoller(warehouse, ["agg.agg_latest_reading", "agg.agg_sensor_avg_last_30min", "stage.dim_devices"])
    poller.start()
    build(select=["dim_devices"], settings=warehouse)
    poller.stop.set()
    poller.join(30)
    assert poller.errors == [] and poller.queries > 0
    oids = _relation_oids(warehouse)
    assert oids["agg.agg_latest_reading"] != old_oid  # re-created, not left behind
    assert q(warehouse, "select count(*) from information_schema.columns where table_schema = 'stage' "
                        "and table_name = 'dim_devices' and column_name = 'retired_flag'")[0][0] == 0
    assert q(warehouse, "select obj_description('agg.agg_latest_reading'::regclass, 'pg_class')")[0][0] == comment
    assert q(warehouse, "select count(*) from agg.agg_latest_reading where device_id = 'aq14'", role="analyst")[0][0] == 7
    assert q(warehouse, "select count(*) from agg.agg_latest_reading", role="api")[0][0] > 0


@pytest.mark.parametrize("held_view", ["agg.agg_latest_reading", "agg.agg_sensor_avg_last_30min"])
def test_a_swap_waiting_for_a_view_holds_none_of_the_tables_its_readers_need(warehouse, held_view):
    """A reader of a view locks the view, then the tables it reads. A swap that locked the table
    (or one view and, through it, the tables) before it had every view deadlocked with a reader
    caught between its two steps, and one of them was aborted (CI, 2026-12-07: the dim_devices
    build). Here a session holds one view only, as such a reader does, then reads the table."""
    with pg_connect("transformer", settings=warehouse, autocommit=True) as conn:
        conn.execute("alter table stage.dim_devices add column if not exists retired_flag boolean")
    failures: list[BaseException] = []

    def rebuild() -> None:
        try:
            build(select=["dim_devices"], settings=warehouse)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failures.append(e)

    with pg_connect("superuser", settings=warehouse) as reader:
        reader.execute("set lock_timeout = '20s'")
        # any lock on the view alone stands for the reader's first step (a comment takes one and
        # leaves the tables alone); rolled back below, so the comment does not change
        reader.execute(f"comment on view {held_view} is 'held'")
        swap = threading.Thread(target=rebuild, daemon=True)
        swap.start()
        deadline = time.monotonic() + 120
        while not q(warehouse, "select 1 from pg_locks where not granted and relation = %s::regclass", held_view):
            assert swap.is_alive() and time.monotonic() < deadline, failures or "the swap never waited for the view"
            time.sleep(0.2)
        reader.execute("select count(*) from stage.dim_devices").fetchall()  # the reader's second step
        reader.rollback()
    swap.join(120)
    assert failures == []
    assert q(warehouse, "select count(*) from agg.agg_latest_reading where device_id = 'aq14'",
             role="analyst")[0][0] == 7


def test_a_swap_recreates_nested_views_and_materialized_views_with_their_rows(warehouse):
    """Views on views and materialized views someone added over a table model survive its swap."""
    with pg_connect("transformer", settings=warehouse, autocommit=True) as conn:
        conn.execute("create view agg.test_latest_aq14 as select * from agg.agg_latest_reading where device_id = 'aq14'")
        conn.execute("create view agg.test_latest_aq14_count as select count(*) as n from agg.test_latest_aq14")
        conn.execute("create materialized view stage.test_device_kinds as "
                     "select kind, count(*) as n from stage.dim_devices group by kind")
        conn.execute("alter table stage.dim_devices add column if not exists retired_flag boolean")
    kinds = q(warehouse, "select * from stage.test_device_kinds order by 1")
    try:
        build(select=["dim_devices"], settings=warehouse)
        assert q(warehouse, "select n from agg.test_latest_aq14_count") == [(7,)]
        assert q(warehouse, "select * from stage.test_device_kinds order by 1") == kinds
    finally:
        with pg_connect("transformer", settings=warehouse, autocommit=True) as conn:
            conn.execute("drop view if exists agg.test_latest_aq14 cascade")
            conn.execute("drop materialized view if exists stage.test_device_kinds")
