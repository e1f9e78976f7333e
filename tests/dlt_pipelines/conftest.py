"""Fixtures of the extract tests: an empty source database and an empty ``raw`` schema."""

from __future__ import annotations

import shutil

import pytest

from iot_core.connections import mongo_client, mongo_db, pg_connect


def reset_extract(settings) -> None:
    """Drop the extract's source collections, raw tables and local dlt state."""
    from dlt_pipelines.pipeline import COLLECTIONS, PIPELINE_NAME, STAGING_DATASET

    client = mongo_client()
    try:
        db = mongo_db(client)
        for name in COLLECTIONS:
            db.drop_collection(name)
    finally:
        client.close()
    with pg_connect("loader", autocommit=True) as conn:
        for schema in ("raw", STAGING_DATASET):
            tables = conn.execute("select tablename from pg_tables where schemaname = %s and tableowner = current_user",
                                  (schema,)).fetchall()
            for (table,) in tables:
                conn.execute(f'drop table if exists "{schema}"."{table}" cascade')
    shutil.rmtree(settings.local_dir / "dlt" / PIPELINE_NAME, ignore_errors=True)


@pytest.fixture
def fresh(services):
    """Empty source collections and raw schema; returns a MongoDB database handle."""
    reset_extract(services)
    client = mongo_client()
    yield mongo_db(client)
    client.close()


def raw_rows(sql: str, params=()) -> list[tuple]:
    with pg_connect("loader") as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def raw():
    """``raw(sql, params)`` -> rows, as the loader role."""
    return raw_rows
