"""Privacy you can prove (issue 14), on the real pipeline: generator -> MongoDB -> extract -> stage
-> curated -> agg, no row seeded by hand.

* a consent withdrawn and a consent granted with a past date, each a plain MongoDB update, reach
  `curated` with the next extract and curated run (counts checked against stage);
* `erase_user` while an extract loop keeps running, then a search of everything the platform
  stores: a pg_dump of the warehouse database, every MongoDB collection, every file of the
  extract's local folder and of the CSV exports: no user id, e-mail or device id left;
* a second erasure changes nothing; a document of the erased user written afterwards is not loaded;
* the analyst never sees an e-mail or a date of birth.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from iot_cli.localstack.postgres import cluster_for
from iot_core.connections import mongo_client, mongo_db, pg_connect
from iot_core.settings import get_settings

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)


@pytest.fixture(scope="module")
def world(isolated_warehouse, mongo_server, tmp_path_factory):
    """A small simulated fleet, one day and a bit, through extract, stage, curated and agg."""
    from dbt_project.runner import build
    from dlt_pipelines import load_raw
    from generators import MongoWriter, backfill, build_fleet

    local = tmp_path_factory.mktemp("privacy-local")
    os.chmod(local, 0o755)
    saved = {k: os.environ.get(k) for k in ("MONGO_DB", "LOCAL_DIR", "EXPORT_DIR")}
    os.environ.update({"MONGO_DB": "iot_test_privacy", "LOCAL_DIR": str(local), "EXPORT_DIR": str(local / "exports")})
    get_settings.cache_clear()
    settings = get_settings()
    client = mongo_client(settings)
    db = mongo_db(client, settings)
    client.drop_database(db.name)
    fleet = build_fleet(users=4, sensors=2, seed=5, anchor=START - timedelta(days=40))
    backfill(MongoWriter(db), fleet, START, START + timedelta(hours=28), bad_rate=0.01, progress=False)
    load_raw()
    build(settings=settings)
    yield settings, db, fleet
    client.drop_database(db.name)
    client.close()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


def q(settings, sql, *params):
    with pg_connect("superuser", settings=settings) as conn:
        return conn.execute(sql, params).fetchall()


def research_id(settings, user_id):
    return q(settings, "select ops.research_id(%s)", user_id)[0][0]


def curated_minutes(settings, user_id):
    return q(settings, "select count(*), min(minute) from curated.curated_research_minutely where research_id = %s",
             research_id(settings, user_id))[0]


def stage_minutes(settings, user_id, since):
    """What curated should hold for the user: the distinct minutes of their devices' samples since ``since``."""
    with pg_connect("superuser", settings=settings) as conn:
        return conn.execute("""
            select count(*), min(m) from (select distinct date_trunc('minute', time) as m from (
                select h.time from stage.stg_heart_rate h join stage.dim_devices d using (device_id)
                where d.owner_user_id = %(u)s and h.time >= %(since)s
                union all
                select s.time from stage.stg_steps s join stage.dim_devices d using (device_id)
                where d.owner_user_id = %(u)s and s.time >= %(since)s) t) m""",
                            {"u": user_id, "since": since}).fetchone()


def test_consent_changes_in_mongodb_reach_curated_with_the_next_extract_and_curated_run(world):
    from dbt_project.runner import build
    from dlt_pipelines import load_raw

    settings, db, fleet = world
    consenting = [u["_id"] for u in db.users.find({"share_with_research_asof": {"$ne": None}})]
    assert consenting, "the fleet should have a consenting user"
    withdrawing = consenting[0]
    granting = next(u["_id"] for u in db.users.find() if u["_id"] != withdrawing)
    assert curated_minutes(settings, withdrawing)[0] > 0
    grant_from = START + timedelta(hours=2)

    changed_at = time.perf_counter()
    db.users.update_one({"_id": withdrawing}, {"$set": {"share_with_research_asof": None}})
    db.users.update_one({"_id": granting}, {"$set": {"share_with_research_asof": grant_from}})
    load_raw()
    build(select=["tag:stage"], settings=settings)
    build(select=["tag:curated"], settings=settings)
    seconds = time.perf_counter() - changed_at

    assert curated_minutes(settings, withdrawing) == (0, None)
    assert q(settings, "select count(*) from curated.curated_research_users where research_id = %s",
             research_id(settings, withdrawing)) == [(0,)]
    got, expected = curated_minutes(settings, granting), stage_minutes(settings, granting, grant_from)
    assert got == expected and got[0] > 0
    # the timeline keeps both changes, with when they were recorded
    history = q(settings, "select user_id, consent_from from stage.consent_periods where purpose = 'research'"
                          " and superseded_at is null and user_id = any(%s) order by user_id",
                [withdrawing, granting])
    assert dict(history) == {withdrawing: None, granting: grant_from}
    print(f"consent change in MongoDB -> curated: {seconds:.1f} s (extract + stage + curated)")


def occurrences(settings, db, local, needles: list[str]) -> dict[str, int]:
    """Where the needles still are: a pg_dump of the warehouse (all schemas), every collection of
    the MongoDB database, every file of the extract's folder and of the exports."""
    found: dict[str, int] = {}
    cluster = cluster_for(settings)
    dump = subprocess.run([str(cluster.bin_dir / "pg_dump"), "-h", settings.pg_host, "-p", str(settings.pg_port),
                           "-U", settings.pg_superuser, "-d", settings.warehouse_db, "--data-only"],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PGPASSWORD": settings.pg_superuser_password.get_secret_value()}).stdout
    for n in needles:
        found[f"pg_dump:{n}"] = dump.count(n)
    for coll in db.list_collection_names():
        text = "\n".join(str(d) for d in db[coll].find({}))
        for n in needles:
            found[f"mongo.{coll}:{n}"] = text.count(n)
    for path in [*(local / "dlt").rglob("*"), *(local / "exports").rglob("*")]:
        if path.is_file():
            data = path.read_bytes().decode("utf-8", "replace")
            for n in needles:
                found[f"{path}:{n}"] = data.count(n)
    return {k: v for k, v in found.items() if v}


def test_erasure_while_the_extract_runs_leaves_nothing_anywhere(world):
    from dbt_project.runner import build
    from dlt_pipelines import load_raw
    from exports.sensor_csv import export_day
    from privacy.erasure import erase_user

    settings, db, fleet = world
    user = fleet.users[1]
    devices = [user.watch_id, user.phone_id]
    email = db.users.find_one({"_id": user.user_id})["email"]
    export_day(START.date())
    needles = [user.user_id, email, *devices]
    assert occurrences(settings, db, settings.local_dir, needles), "the search must find the user before"

    stop = threading.Event()
    errors: list[BaseException] = []

    def extract_loop():
        while not stop.is_set():
            try:
                load_raw()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                return
            time.sleep(0.2)

    # the user's watch sent a bucket the extract has not read yet when the erasure starts
    template = db.heart_rates.find_one({"device_id": user.watch_id})
    db.heart_rates.insert_one({**template, "_id": f"{template['_id']}:pending"})

    loop = threading.Thread(target=extract_loop)
    loop.start()
    time.sleep(2)
    try:
        result = erase_user(user.user_id, settings=settings, progress=False)
    finally:
        time.sleep(2)
        stop.set()
        loop.join(timeout=120)
    assert not errors, errors
    assert set(result["devices"]) == set(devices)
    assert result["deleted"]["raw.users"] == 1 and result["deleted"]["mongo.users"] == 1
    print(f"erasure: {result['seconds']} s, {sum(result['deleted'].values())} rows/documents in "
          f"{len(result['deleted'])} places")

    load_raw()
    build(settings=settings)
    left = occurrences(settings, db, settings.local_dir, needles)
    assert left == {}, left

    # the watch sends once more after the erasure: MongoDB holds it (the application's store), the
    # platform does not load it, and the warehouse stays clean
    db.heart_rates.insert_one({**template, "_id": f"{template['_id']}:after", "_ingested_at": datetime.now(UTC)})
    assert load_raw()["erased"] == 1
    build(settings=settings)
    left = occurrences(settings, db, settings.local_dir, needles)
    assert set(left) == {f"mongo.heart_rates:{user.watch_id}"}, left
    record = q(settings, "select user_key, device_count, deleted_rows from ops.erasures")
    assert record[-1][0] == result["user_key"] and user.user_id not in str(record)

    again = erase_user(user.user_id, settings=settings, progress=False)
    assert again["deleted"] == {} or set(again["deleted"]) <= {"mongo.heart_rates"}


def test_the_analyst_never_sees_an_email_or_a_date_of_birth(world):
    settings, db, _ = world
    emails = [u["email"] for u in db.users.find({}, {"email": 1})]
    with pg_connect("analyst", settings=settings) as conn:
        readable = conn.execute("""
            select format('%I.%I', n.nspname, c.relname)
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'v', 'm', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
              and n.nspname not like 'pg_toast%%' and n.nspname not like '\\_timescaledb%%'
              and has_table_privilege(c.oid, 'select')""").fetchall()
        assert readable, "the analyst reads something"
        columns = conn.execute("""
            select table_schema, table_name, column_name from information_schema.columns
            where column_name in ('email', 'dob', 'date_of_birth', 'birth_date')""").fetchall()
        visible = [c for c in columns if f'{c[0]}.{c[1]}' in {r[0] for r in readable}]
        assert visible == []
        for (relation,) in readable:
            text = conn.execute(f"select coalesce(string_agg(x::text, ' '), '') from {relation} as x").fetchone()[0]
            assert not any(e in text for e in emails), relation


def test_erasure_finds_tables_by_looking_not_by_list(world):
    """A table added later (any schema) is searched: every column that holds a user or device key,
    a research id or free text is in the plan; a test table proves a new one is picked up."""
    from privacy.erasure import (
        DEVICE_COLUMNS,
        RESEARCH_ID_COLUMN,
        USER_COLUMNS,
        erasure_plan,
        warehouse_tables,
    )

    settings, _, _ = world
    with pg_connect("superuser", settings=settings) as conn:
        conn.execute("create schema if not exists scratch")
        conn.execute("create table if not exists scratch.late_model (owner_user_id text, sensor jsonb, n int)")
        tables = warehouse_tables(conn)
        conn.rollback()
    plan = erasure_plan(tables)
    assert plan[("scratch", "late_model")] == ["key:owner_user_id", "free_text:sensor"]
    uncovered = [(s, t, c) for (s, t), cols in tables.items() for c in cols
                 if c in USER_COLUMNS | DEVICE_COLUMNS | {RESEARCH_ID_COLUMN}
                 and (s, t) not in {("ops", "erasures"), ("ops", "erasure_tombstones")} and (s, t) not in plan]
    assert uncovered == []
    for schema in ("raw", "stage", "agg", "curated", "ops"):
        assert any(s == schema for s, _ in plan), schema
