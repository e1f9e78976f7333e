"""The warehouse and the MongoDB-protocol server come up with the layout of DESIGN §4."""

import psycopg
import pytest

from iot_core.connections import mongo_client, mongo_db, pg_connect


def test_mongo_roundtrip(services):
    with mongo_client() as client:
        coll = mongo_db(client)["foundation_probe"]
        coll.delete_many({})
        coll.insert_one({"_id": "x", "v": 1})
        assert coll.find_one({"_id": "x"})["v"] == 1


def test_warehouse_schemas_exist(services):
    with pg_connect() as conn:
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
    assert {"raw", "stage", "agg", "curated", "ml", "ops"} <= schemas


def test_service_databases_exist(services):
    with pg_connect(database="postgres") as conn:
        dbs = {r[0] for r in conn.execute("select datname from pg_database")}
    s = services
    assert {s.warehouse_db, s.airflow_db, s.mlflow_db} <= dbs


def test_loader_writes_raw_and_transformer_reads_it(services):
    with pg_connect("loader", autocommit=True) as conn:
        conn.execute("drop table if exists raw.grant_probe")
        conn.execute("create table raw.grant_probe (v int)")
        conn.execute("insert into raw.grant_probe values (1)")
    with pg_connect("transformer") as conn:
        assert conn.execute("select v from raw.grant_probe").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into raw.grant_probe values (2)")


def test_analyst_is_read_only_and_sees_only_agg_and_curated(services):
    with pg_connect("transformer", autocommit=True) as conn:
        conn.execute("drop table if exists agg.grant_probe")
        conn.execute("create table agg.grant_probe (v int)")
        conn.execute("insert into agg.grant_probe values (7)")
    with pg_connect("analyst") as conn:
        assert conn.execute("select v from agg.grant_probe").fetchone() == (7,)
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from raw.grant_probe")
        conn.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create temp table t (v int)")


def test_init_sql_is_idempotent(pg_cluster, services):
    pg_cluster.apply_init_sql(services)
    pg_cluster.apply_init_sql(services)
